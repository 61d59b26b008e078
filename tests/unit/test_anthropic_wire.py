"""Chat completions to and from Anthropic's Messages API (backends/anthropic_wire.py), the parts a
fake engine upstream cannot show: images, parallel tool results joined in one user turn, cached
tokens, and a stream with text and two tool calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from homeport.backends.anthropic_wire import chunks, to_completion, to_messages
from homeport.errors import InvalidRequest, UnsupportedParameter

pytestmark = pytest.mark.anyio


def test_a_conversation_with_images_and_parallel_tool_results() -> None:
    calls = [{"id": f"toolu_{i}", "type": "function", "function": {"name": "f", "arguments": f'{{"i": {i}}}'}}
             for i in (1, 2)]  # fmt: skip
    body = {"model": "m", "max_completion_tokens": 50, "stop": "END", "user": "u-1", "messages": [
        {"role": "developer", "content": "Rules."}, {"role": "system", "content": [{"type": "text", "text": "More."}]},
        {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {
            "url": "data:image/png;base64,AAAA"}}, {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}}]},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "one"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "two"}]}  # fmt: skip
    out = to_messages(body)
    assert out["system"] == "Rules.\n\nMore." and out["max_tokens"] == 50 and out["stop_sequences"] == ["END"]
    assert out["metadata"] == {"user_id": "u-1"} and "tools" not in out
    user, assistant, results = out["messages"]
    assert user["content"][1]["source"] == {"type": "base64", "media_type": "image/png", "data": "AAAA"}
    assert user["content"][2]["source"] == {"type": "url", "url": "https://x/y.jpg"}
    assert [b["input"] for b in assistant["content"]] == [{"i": 1}, {"i": 2}]
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "one"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "two"}]}  # one turn: turns alternate


def test_what_has_no_messages_equivalent_is_a_400_naming_it() -> None:
    hi = [{"role": "user", "content": "hi"}]
    for extra, param in (({"n": 2}, "n"), ({"logprobs": True}, "logprobs"),
                         ({"response_format": {"type": "json_object"}}, "response_format")):  # fmt: skip
        with pytest.raises(UnsupportedParameter) as err:
            to_messages({"model": "m", "messages": hi, **extra})
        assert err.value.param == param
    with pytest.raises(InvalidRequest) as bad:
        to_messages({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]})
    assert bad.value.param == "messages[0].content[0].type"


def test_a_message_with_cached_tokens_becomes_a_completion() -> None:
    message = {"id": "msg_1", "model": "claude", "stop_reason": "tool_use", "content": [
        {"type": "text", "text": "Checking."}, {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": 1}}],
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 5,
                  "output_tokens": 7}}  # fmt: skip
    out = to_completion(message)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "Checking."
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert out["usage"] == {"prompt_tokens": 105, "completion_tokens": 7, "total_tokens": 112,
                            "prompt_tokens_details": {"cached_tokens": 90}}  # fmt: skip


async def test_a_stream_with_text_and_two_tool_calls() -> None:
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": {"id": "msg_2", "model": "claude", "usage": {"input_tokens": 12}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_stop", {"index": 0}),
        ("ping", {}),
        *[e for i in (1, 2) for e in (
            ("content_block_start", {"index": i, "content_block": {"type": "tool_use", "id": f"t{i}", "name": "f"}}),
            ("content_block_delta", {"index": i, "delta": {"type": "input_json_delta", "partial_json": '{"x"'}}),
            ("content_block_delta", {"index": i, "delta": {"type": "input_json_delta", "partial_json": f": {i}}}"}}))],
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}}),
        ("message_stop", {}),
    ]  # fmt: skip

    async def source() -> AsyncIterator[tuple[str, dict[str, Any]]]:
        for event in events:
            yield event

    out = [c async for c in chunks(source())]
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out if c["choices"])
    calls: dict[int, str] = {}
    for c in out:
        for t in (c["choices"][0]["delta"].get("tool_calls") or []) if c["choices"] else []:
            calls[t["index"]] = calls.get(t["index"], "") + t["function"]["arguments"]
    assert text == "Hi" and calls == {0: '{"x": 1}', 1: '{"x": 2}'}
    assert [c["choices"][0]["finish_reason"] for c in out if c["choices"]][-1] == "tool_calls"
    assert out[-1]["choices"] == [] and out[-1]["usage"]["completion_tokens"] == 20
    assert out[-1]["usage"]["prompt_tokens"] == 12 and all(c["id"] == "chatcmpl-msg_2" for c in out)
