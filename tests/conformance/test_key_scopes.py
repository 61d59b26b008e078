"""Key scopes through the SDK: model allow-lists, read-only keys, expiry, endpoint families."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import create_key
from tests.spec import validate

ASK = [{"role": "user", "content": "hi"}]


def _client(server, *args: str) -> openai.OpenAI:
    secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, *args)
    return openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)


def test_model_allow_list(server) -> None:
    client = _client(server, "--name", "chat-only", "--models", "smollm2-135m-instruct")
    ids = {m.id for m in client.models.list().data}
    # Every name of the allowed model (its pinned id, OpenAI's chat names) and nothing else.
    from homeport.services.inference.openai_names import OPENAI_NAMES

    assert ids == {"smollm2-135m-instruct", "smollm2-135m-instruct-q4_1-2025-02-07", *OPENAI_NAMES["chat"]}
    assert client.chat.completions.create(model="gpt-4o-mini", messages=ASK, max_tokens=2).choices
    with pytest.raises(openai.NotFoundError) as err:
        client.embeddings.create(model="all-minilm-l6-v2", input="x")
    validate("ErrorResponse", err.value.response.json())
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gemma-3-270m")


def test_read_only_key(server) -> None:
    client = _client(server, "--name", "reader", "--read-only")
    assert client.models.list().data
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="smollm2-135m-instruct", messages=ASK, max_tokens=2)
    validate("ErrorResponse", err.value.response.json())
    assert err.value.status_code == 403


def test_expired_key(server) -> None:
    client = _client(server, "--name", "gone", "--expires-in-days", "-1")
    with pytest.raises(openai.AuthenticationError) as err:
        client.models.list()
    assert "expired" in err.value.message


def test_endpoint_families(server) -> None:
    client = _client(server, "--name", "embedder", "--endpoints", "embeddings,models")
    assert client.models.list().data
    assert client.embeddings.create(model="all-minilm-l6-v2", input="x").data
    with pytest.raises(openai.PermissionDeniedError) as err:
        client.chat.completions.create(model="smollm2-135m-instruct", messages=ASK, max_tokens=2)
    validate("ErrorResponse", err.value.response.json())
    assert "embeddings, models" in err.value.message and "chat" in err.value.message
