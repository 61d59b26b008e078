"""Stored chat completions (`store: true`) through the official SDK, validated against the spec."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import create_key
from tests.spec import validate, wire

MODEL = "smollm2-135m-instruct"


def test_stored_completions_are_listed_read_updated_and_deleted(server) -> None:
    secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "store", "--project", "stored")
    client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0, timeout=120)
    asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi."}]
    kept = client.chat.completions.create(model=MODEL, messages=asked, max_tokens=8, store=True,
                                          metadata={"team": "a"})  # fmt: skip
    streamed = client.chat.completions.create(model=MODEL, messages=asked, max_tokens=8, store=True, stream=True,
                                              metadata={"team": "b"})  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    client.chat.completions.create(model=MODEL, messages=asked, max_tokens=4)  # not stored (store defaults false)
    listed = client.chat.completions.list(model=MODEL)
    validate("ChatCompletionList", wire(listed))
    assert [c.id for c in listed.data][0] == kept.id and len(listed.data) == 2  # oldest first
    assert listed.data[1].choices[0].message.content == text  # a streamed one is stored whole
    only_b = client.chat.completions.list(metadata={"team": "b"})
    assert [c.metadata for c in only_b.data] == [{"team": "b"}]
    got = client.chat.completions.retrieve(kept.id)
    validate("CreateChatCompletionResponse", wire(got))
    assert got.choices[0].message.content == kept.choices[0].message.content
    messages = client.chat.completions.messages.list(kept.id)
    assert [(m.role, m.content) for m in messages.data] == [("system", "Be brief."), ("user", "Say hi.")]
    assert client.chat.completions.update(kept.id, metadata={"team": "c"}).metadata == {"team": "c"}
    validate("ChatCompletionDeleted", wire(client.chat.completions.delete(kept.id)))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(kept.id)
    other = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "other", "--project", "elsewhere")
    stranger = openai.OpenAI(base_url=server.base_url, api_key=other, max_retries=0)
    with pytest.raises(openai.NotFoundError):  # another project's stored completion is not found
        stranger.chat.completions.retrieve(listed.data[1].id)
    assert stranger.chat.completions.list().data == []
