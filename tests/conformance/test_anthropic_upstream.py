"""An upstream deployment speaking Anthropic's Messages API (`protocol: anthropic`), driven through
the OpenAI SDK on a gateway Homeport: the Anthropic side is another Homeport's /v1/messages (fake
engines, checked against the `anthropic` SDK asking it directly) and, for what only a stub can
do on cue, a small HTTP server that answers Anthropic's 529 "overloaded" and records requests."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.conftest import API_KEY, start_server, stop_server
from tests.spec import validate

FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"}]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "The weather.", "parameters": CITY}}


class _Overloaded(http.server.BaseHTTPRequestHandler):
    """Anthropic's answer when it is overloaded, to every POST; the bodies it was sent, kept."""

    received: list[tuple[dict, dict]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).received.append((dict(self.headers), body))
        data = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}).encode()
        self.send_response(529)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[openai.OpenAI, anthropic.Anthropic]]:
    upstream = start_server(tmp_path_factory.mktemp("claude-side"), {"models": FAKE})
    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Overloaded)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    claude_side = {"base_url": upstream.base_url, "protocol": "anthropic", "api_key": API_KEY, "model": "fake-chat"}
    busy = {"base_url": f"http://127.0.0.1:{stub.server_address[1]}/v1", "protocol": "anthropic",
            "api_key": "sk-ant-stub", "model": "claude-sonnet-4-5"}  # fmt: skip
    models = [{"id": "claude-local", "version": "v1", "kind": "chat", "backend": "upstream", "health_check_s": None,
               "upstreams": [claude_side]},
              {"id": "claude-busy", "version": "v1", "kind": "chat", "backend": "upstream", "health_check_s": None,
               "cooldown_s": 60, "upstreams": [busy, claude_side]}]  # fmt: skip
    server = start_server(tmp_path_factory.mktemp("gateway"), {"models": models})
    try:
        with openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=60) as client, \
                anthropic.Anthropic(base_url=upstream.root, api_key=API_KEY, max_retries=0) as direct:  # fmt: skip
            yield client, direct
    finally:
        stop_server(server)
        stop_server(upstream)
        stub.shutdown()


def _dump(obj) -> dict:  # type: ignore[no-untyped-def]
    return obj.model_dump(mode="json", exclude_unset=True)


def test_a_chat_completion_is_answered_by_the_messages_api(gateway) -> None:  # type: ignore[no-untyped-def]
    client, direct = gateway
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another one?"}]  # fmt: skip
    out = client.chat.completions.create(model="claude-local", messages=messages, max_tokens=6, stop=["zzz"])
    validate("CreateChatCompletionResponse", _dump(out))
    same = direct.messages.create(model="fake-chat", system="Be brief.", max_tokens=6, stop_sequences=["zzz"],
                                  messages=[{"role": "user", "content": "Name a colour."},
                                            {"role": "assistant", "content": "Blue."},
                                            {"role": "user", "content": "Another one?"}])  # fmt: skip
    assert out.model == "claude-local" and out.choices[0].message.content == same.content[0].text
    assert out.choices[0].finish_reason == {"max_tokens": "length", "end_turn": "stop"}[same.stop_reason]
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (same.usage.input_tokens, same.usage.output_tokens)

    stream = client.chat.completions.create(model="claude-local", messages=messages, max_tokens=6, stream=True,
                                            stream_options={"include_usage": True})  # fmt: skip
    chunks = list(stream)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", _dump(chunk))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == same.content[0].text
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == same.usage.output_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        out.choices[0].finish_reason]


def test_tool_calls_and_tool_results_cross_over(gateway) -> None:  # type: ignore[no-untyped-def]
    client, _ = gateway
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    out = client.chat.completions.create(model="claude-local", messages=ask, tools=[TOOL], tool_choice="required",
                                         max_tokens=200)
    call = out.choices[0].message.tool_calls[0]
    assert out.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {}  # what the fake engine calls tools with
    streamed = list(client.chat.completions.create(model="claude-local", messages=ask, tools=[TOOL],
                                                   tool_choice="required", stream=True, max_tokens=200))  # fmt: skip
    deltas = [t for c in streamed if c.choices for t in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {}
    answered = ask + [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                      {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 °C"}]  # fmt: skip
    final = client.chat.completions.create(model="claude-local", messages=answered, tools=[TOOL], max_tokens=200)
    assert final.choices[0].message.content and final.choices[0].message.tool_calls is None


def test_what_anthropic_cannot_take_is_a_400_and_its_errors_come_back_in_openai_shape(gateway) -> None:  # type: ignore[no-untyped-def]
    client, _ = gateway
    hi = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as err:  # refused here, before anything is sent
        client.chat.completions.create(model="claude-local", messages=hi, n=2)
    assert err.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as err:  # refused there (in Anthropic's shape), relayed in OpenAI's
        client.chat.completions.create(model="claude-local", messages=hi, max_tokens=1_000_000)
    validate("ErrorResponse", err.value.response.json())
    assert "maximum context length is 2048" in err.value.message  # the Anthropic side's own words


def test_an_overloaded_deployment_529_is_retried_on_the_next(gateway) -> None:  # type: ignore[no-untyped-def]
    client, _ = gateway
    hi = [{"role": "user", "content": "hi"}]
    out = client.chat.completions.create(model="claude-busy", messages=hi, max_tokens=4, temperature=1.5,
                                         tools=[TOOL], parallel_tool_calls=False)  # fmt: skip
    assert out.choices[0].message.content is not None or out.choices[0].message.tool_calls
    headers, body = _Overloaded.received[-1]  # what the busy one was sent: Anthropic's headers and body
    assert headers["x-api-key"] == "sk-ant-stub" and headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in {k.lower() for k in headers}
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 4 and body["temperature"] == 1.0
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert body["tools"][0]["input_schema"] == TOOL["function"]["parameters"]
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
