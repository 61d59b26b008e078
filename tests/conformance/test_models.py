"""GET /v1/models through the official SDK."""

from __future__ import annotations

import openai
import pytest

from tests.spec import validate, wire


def test_list_has_default_models_with_pinned_versions_and_aliases(client) -> None:
    page = client.models.list()
    validate("ListModelsResponse", {"object": "list", "data": [wire(m) for m in page.data]})
    ids = {m.id for m in page.data}
    assert {"smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2"} <= ids
    assert "smollm2-135m-instruct-q4_1-2025-02-07" in ids  # pinned version
    assert "gpt-4o-mini" in ids  # configured alias


def test_retrieve(client) -> None:
    model = client.models.retrieve("all-minilm-l6-v2")
    validate("Model", wire(model))
    assert model.id == "all-minilm-l6-v2" and model.object == "model"


def test_retrieve_unknown_is_404_model_not_found(client) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("no-such-model")
    assert err.value.status_code == 404
    assert err.value.code == "model_not_found"
    validate("ErrorResponse", err.value.response.json())


def test_alias_serves_unchanged_code(client) -> None:
    out = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}], max_tokens=5
    )
    assert out.model == "smollm2-135m-instruct"  # the model that answered, as OpenAI names the snapshot
    assert out.choices[0].message.content
