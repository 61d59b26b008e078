"""Anthropic's Messages API through the official `anthropic` SDK, on the default chat model: system,
multi-turn, max_tokens, stop sequences, tools (tool_use / tool_result), streaming with Anthropic's
event sequence, count_tokens, the x-api-key header, Anthropic's error shape, and usage metered
as for chat."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.conftest import API_KEY

MODEL = "smollm2-135m-instruct"
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                            "required": ["city"], "additionalProperties": False}}  # fmt: skip


@pytest.fixture(scope="module")
def claude(server):  # -> anthropic.Anthropic
    with anthropic.Anthropic(base_url=server.root, api_key=API_KEY, max_retries=0, timeout=120) as c:
        yield c


def test_a_message_with_system_and_turns(claude) -> None:
    out = claude.messages.create(
        model=MODEL, max_tokens=24, system="You are terse.", extra_body={"temperature": 0.5},  # older SDKs' field
        messages=[{"role": "user", "content": "Hi, I am Ada."}, {"role": "assistant", "content": "Hello Ada."},
                  {"role": "user", "content": [{"type": "text", "text": "Name three colors."}]}],
    )  # fmt: skip
    assert out.type == "message" and out.role == "assistant" and out.model == MODEL and out.id.startswith("msg_")
    assert out.content[0].type == "text" and out.content[0].text
    assert out.stop_reason in ("end_turn", "max_tokens")
    assert out.usage.input_tokens > 10 and 0 < out.usage.output_tokens <= 24


def test_max_tokens_ends_with_max_tokens(claude) -> None:
    out = claude.messages.create(model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "Tell a story."}])
    assert out.stop_reason == "max_tokens" and out.usage.output_tokens == 3


def test_tools_tool_use_and_tool_result(claude) -> None:
    ask = {"role": "user", "content": "What is the weather in Paris?"}
    out = claude.messages.create(model=MODEL, max_tokens=64, tools=[WEATHER], tool_choice={"type": "any"},
                                 messages=[ask])  # fmt: skip
    assert out.stop_reason == "tool_use"
    (use,) = [b for b in out.content if b.type == "tool_use"]
    assert use.name == "get_weather" and isinstance(use.input["city"], str) and use.id.startswith("toolu_")
    after = claude.messages.create(model=MODEL, max_tokens=32, tools=[WEATHER], messages=[
        ask, {"role": "assistant", "content": out.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}]},
    ])  # fmt: skip
    assert after.content and after.usage.input_tokens > out.usage.input_tokens


def test_streaming_follows_anthropics_event_sequence(claude) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "Say hi."}]) as s:
        types = [event.type for event in s]
        final = s.get_final_message()
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert types[1] == "content_block_start" and "content_block_delta" in types
    assert types.index("content_block_stop") < types.index("message_delta")
    assert final.content[0].text and final.usage.output_tokens > 0


def test_streamed_tool_use_arrives_as_input_json(claude) -> None:
    with claude.messages.stream(model=MODEL, max_tokens=64, tools=[WEATHER], tool_choice={"type": "tool",
                                                                                         "name": "get_weather"},
                                messages=[{"role": "user", "content": "Weather in Rome?"}]) as s:  # fmt: skip
        final = s.get_final_message()
    (use,) = [b for b in final.content if b.type == "tool_use"]
    assert use.name == "get_weather" and isinstance(use.input, dict) and final.stop_reason == "tool_use"


def test_count_tokens_matches_what_the_message_reads(claude) -> None:
    messages = [{"role": "user", "content": "Count these words, please."}]
    counted = claude.messages.count_tokens(model=MODEL, messages=messages, system="Be brief.")
    out = claude.messages.create(model=MODEL, max_tokens=2, messages=messages, system="Be brief.")
    assert counted.input_tokens == out.usage.input_tokens


def test_errors_in_anthropics_shape_and_classes(claude, server) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        claude.messages.create(model="claude-nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert err.value.body["type"] == "error" and err.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model=MODEL, max_tokens=5, extra_body={"top_k": 5},
                               messages=[{"role": "user", "content": "x"}])  # fmt: skip
    assert bad.value.body["error"]["type"] == "invalid_request_error" and "top_k" in bad.value.message
    raw = httpx.post(f"{server.root}/v1/messages", headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
                     json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert raw.status_code == 400 and "max_tokens" in raw.json()["error"]["message"]  # required, as on Anthropic's
    stranger = anthropic.Anthropic(base_url=server.root, api_key="sk-ant-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        stranger.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert denied.value.body["error"]["type"] == "authentication_error"


def test_usage_is_metered_as_chat(claude, server) -> None:
    import time

    def counted() -> int:
        query = {"start_time": 0, "limit": 1, "bucket_width": "1d", "end_time": 4_000_000_000}
        r = httpx.get(f"{server.base_url}/organization/usage/completions", params=query,
                      headers={"authorization": f"Bearer {API_KEY}"})  # fmt: skip
        return sum(x["num_model_requests"] for b in r.json()["data"] for x in b["results"])

    before = counted()
    claude.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "One more."}])
    deadline = time.monotonic() + 30
    while counted() == before:
        assert time.monotonic() < deadline, "the message was not metered"
        time.sleep(0.2)
