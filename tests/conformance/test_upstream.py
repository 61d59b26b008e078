"""Upstream backends through the official SDK: Homeport in front of real OpenAI-compatible servers on
loopback (other Homeport instances, and llama-cpp-python's own server on the default GGUF):
pass-through of chat (plain and streamed) and embeddings, failover between deployments, a 429
retried on another deployment, fallbacks to another model, an upstream killed mid-stream, and
usage counted once."""

from __future__ import annotations

import json
import socket
import time

import httpx
import openai
import pytest

from homeport.services.inference.registry import locate_weights
from homeport.settings import DEFAULT_MODELS
from tests.conftest import API_KEY, create_key, start_llama_cpp_server, start_server, stop_server
from tests.spec import validate

FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
        {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake"}]  # fmt: skip
HI = [{"role": "user", "content": "hi there"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _deployment(server, model: str, key: str = API_KEY) -> dict:
    return {"base_url": server.base_url, "api_key": key, "model": model, "timeout_s": 20}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    """Two upstream Homeports (fake engines) and a gateway Homeport in front of them."""
    up1 = start_server(tmp_path_factory.mktemp("up1"), {"models": FAKE})
    up2 = start_server(tmp_path_factory.mktemp("up2"), {"models": FAKE})
    limited = create_key({"HOMEPORT_DATA_DIR": str(up2.data_dir)}, "--name", "tight", "--rpm", "1")
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    models = [
        {"id": "remote-chat", "version": "v1", "kind": "chat", "backend": "upstream", "cooldown_s": 3,
         "upstreams": [_deployment(up1, "fake-chat"), _deployment(up2, "fake-chat")]},
        {"id": "remote-embed", "version": "v1", "kind": "embedding", "backend": "upstream",
         "upstreams": [_deployment(up1, "fake-embed")]},
        {"id": "tight-chat", "version": "v1", "kind": "chat", "backend": "upstream",
         "upstreams": [_deployment(up2, "fake-chat", limited), _deployment(up1, "fake-chat")]},
        {"id": "backup-chat", "version": "v1", "kind": "chat", "backend": "upstream",
         "upstreams": [_deployment(up2, "fake-chat")]},
        {"id": "primary-chat", "version": "v1", "kind": "chat", "backend": "upstream", "retries": 1,
         "upstreams": [{"base_url": dead, "timeout_s": 2}], "fallbacks": ["backup-chat"]},
        *FAKE,
    ]  # fmt: skip
    gateway = start_server(tmp_path_factory.mktemp("gateway"), {"models": models})
    client = openai.OpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0, timeout=60)
    yield gateway, up1, up2, client
    for s in (gateway, up1, up2):
        stop_server(s)


def _usage_requests(server, model: str) -> int:
    time.sleep(1.2)  # usage is written in batches
    r = httpx.get(f"{server.base_url}/organization/usage/completions", headers={"Authorization": f"Bearer {API_KEY}"},
                  params={"start_time": int(time.time()) - 3600, "group_by": ["model"]})  # fmt: skip
    return sum(x["num_model_requests"] for b in r.json()["data"] for x in b["results"] if x["model"] == model)


def test_chat_and_embeddings_pass_through(fleet) -> None:
    gateway, up1, _, client = fleet
    direct = openai.OpenAI(base_url=up1.base_url, api_key=API_KEY, max_retries=0)
    out = client.chat.completions.create(model="remote-chat", messages=HI, max_tokens=8, seed=3)
    validate("CreateChatCompletionResponse", out.model_dump(mode="json", exclude_unset=True))
    same = direct.chat.completions.create(model="fake-chat", messages=HI, max_tokens=8, seed=3)
    assert out.model == "remote-chat" and out.choices[0].message.content == same.choices[0].message.content
    assert out.usage.prompt_tokens == same.usage.prompt_tokens  # the upstream's own count

    chunks = list(client.chat.completions.create(model="remote-chat", messages=HI, max_tokens=8, seed=3,
                                                 stream=True))  # fmt: skip
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(mode="json", exclude_unset=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == same.choices[0].message.content
    assert all(c.usage is None for c in chunks)  # not asked for: the usage chunk Homeport needs is not relayed
    with_usage = list(client.chat.completions.create(model="remote-chat", messages=HI, max_tokens=8, stream=True,
                                                     stream_options={"include_usage": True}))  # fmt: skip
    assert with_usage[-1].usage.completion_tokens > 0

    emb = client.embeddings.create(model="remote-embed", input=["a", "b"])
    assert len(emb.data) == 2 and emb.usage.prompt_tokens > 0 and emb.model == "remote-embed"


def test_failover_to_the_healthy_deployment_and_usage_counted_once(tmp_path) -> None:
    up1 = start_server(tmp_path / "a", {"models": FAKE})
    up2 = start_server(tmp_path / "b", {"models": FAKE})
    models = [{"id": "remote-chat", "version": "v1", "kind": "chat", "backend": "upstream", "cooldown_s": 3,
               "upstreams": [_deployment(up1, "fake-chat"), _deployment(up2, "fake-chat")]}]  # fmt: skip
    gateway = start_server(tmp_path / "gw", {"models": models})
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0)
        assert client.chat.completions.create(model="remote-chat", messages=HI, max_tokens=4).choices
        stop_server(up1)  # one deployment gone: requests go to the other
        for _ in range(4):
            assert client.chat.completions.create(model="remote-chat", messages=HI, max_tokens=4).choices
        assert list(client.chat.completions.create(model="remote-chat", messages=HI, max_tokens=4, stream=True))
        assert _usage_requests(gateway, "remote-chat") == 6  # each once; failed attempts are not billed
        assert _usage_requests(up2, "fake-chat") >= 5
    finally:
        for s in (gateway, up1, up2):
            stop_server(s)


def test_429_is_retried_on_another_deployment_and_fallbacks(fleet) -> None:
    _, _, _, client = fleet
    # tight-chat's first deployment allows one request a minute: the second goes to the other one.
    for _ in range(3):
        assert client.chat.completions.create(model="tight-chat", messages=HI, max_tokens=4).choices
    # primary-chat's only deployment is down: its fallback answers.
    out = client.chat.completions.create(model="primary-chat", messages=HI, max_tokens=4)
    assert out.choices[0].message.content


def test_upstream_errors_come_back_in_openai_shape(fleet) -> None:
    _, _, _, client = fleet
    with pytest.raises(openai.BadRequestError) as err:  # the upstream (fake engine) rejects an out-of-vocab token
        client.chat.completions.create(model="remote-chat", messages=HI, logit_bias={"99999": 5})
    validate("ErrorResponse", err.value.response.json())


def test_upstream_killed_mid_stream_gives_an_error_event(tmp_path) -> None:
    slow = start_server(tmp_path / "slow", {"load_models": ["smollm2-135m-instruct"]})
    spare = start_server(tmp_path / "spare", {"models": FAKE})
    models = [{"id": "far-chat", "version": "v1", "kind": "chat", "backend": "upstream", "retries": 1,
               "health_check_s": None,
               "upstreams": [_deployment(slow, "smollm2-135m-instruct"), _deployment(spare, "fake-chat")]}]  # fmt: skip
    gateway = start_server(tmp_path / "gw", {"models": models})
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0, timeout=60)
        story = [{"role": "user", "content": "Tell a very long story."}]
        # Tools and structured outputs pass through (the real model upstream enforces them).
        weather = {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "maxLength": 20}},
                    "required": ["city"],
                },
            },
        }
        ask = [{"role": "user", "content": "What is the weather in Paris?"}]
        called = client.chat.completions.create(
            model="far-chat",
            messages=ask,
            tools=[weather],
            max_tokens=60,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        assert called.choices[0].message.tool_calls[0].function.name == "get_weather"
        schema = {"name": "city", "strict": True, "schema": weather["function"]["parameters"]}
        shaped = client.chat.completions.create(
            model="far-chat",
            messages=ask,
            max_tokens=60,
            response_format={"type": "json_schema", "json_schema": schema},
        )
        assert "city" in json.loads(shaped.choices[0].message.content)  # fmt: skip
        # A client that leaves mid-stream: the upstream stops generating (its engine goes idle) at once.
        with client.chat.completions.create(model="far-chat", stream=True, max_tokens=2000, temperature=1.0,
                                            messages=story) as leaving:  # fmt: skip
            for i, _ in enumerate(leaving):
                if i == 3:
                    break
        assert _engine_idle_within(slow, "smollm2-135m-instruct", seconds=5)
        stream = client.chat.completions.create(
            model="far-chat", stream=True, max_tokens=2000, temperature=1.0, messages=story
        )
        began = time.monotonic()
        with pytest.raises(openai.APIError):
            for i, _ in enumerate(stream):
                if i == 5:
                    slow.process.kill()
        assert time.monotonic() - began < 30  # an error, not a hang
        for _ in range(3):  # the next requests go to the healthy deployment
            assert client.chat.completions.create(model="far-chat", messages=HI, max_tokens=4).model == "far-chat"
    finally:
        for s in (gateway, slow, spare):
            stop_server(s)


def _engine_idle_within(server, model: str, seconds: float) -> bool:
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = httpx.get(f"{server.root}/metrics").text
        busy = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "homeport_engine_requests" and s.labels.get("model") == model]  # fmt: skip
        if busy == [0.0]:
            return True
        time.sleep(0.2)
    return False


def test_active_health_checks_take_a_dead_deployment_out(tmp_path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    live = start_server(tmp_path / "live", {"models": FAKE})
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    models = [{"id": "checked-chat", "version": "v1", "kind": "chat", "backend": "upstream", "health_check_s": 0.3,
               "upstreams": [{"base_url": dead}, _deployment(live, "fake-chat")]}]  # fmt: skip
    gateway = start_server(tmp_path / "gw", {"models": models})
    try:
        time.sleep(1.5)
        text = httpx.get(f"{gateway.root}/metrics").text
        up = {s.labels["deployment"].split("#")[0]: s.value for f in text_string_to_metric_families(text)
              for s in f.samples if s.name == "homeport_upstream_up"}  # fmt: skip
        assert up == {dead: 0.0, live.base_url: 1.0}
        client = openai.OpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0)
        began = time.monotonic()
        assert client.chat.completions.create(model="checked-chat", messages=HI, max_tokens=4).choices
        assert time.monotonic() - began < 1  # straight to the live one: no attempt on the dead one
    finally:
        stop_server(gateway)
        stop_server(live)


def test_llama_cpp_python_server_as_upstream(tmp_path) -> None:
    gguf = locate_weights(DEFAULT_MODELS[0], tmp_path)
    server, base_url = start_llama_cpp_server(gguf, tmp_path / "llama-server.log", "--n_ctx", "2048",
                                              "--model_alias", "smollm2")  # fmt: skip
    try:
        models = [{"id": "lcpp-chat", "version": "v1", "kind": "chat", "backend": "upstream",
                   "upstreams": [{"base_url": base_url, "model": "smollm2"}]}]  # fmt: skip
        gateway = start_server(tmp_path / "gw", {"models": models})
        try:
            client = openai.OpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0, timeout=120)
            out = client.chat.completions.create(model="lcpp-chat", messages=HI, max_tokens=8)
            assert out.choices[0].message.content and out.usage.completion_tokens > 0
            text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                model="lcpp-chat", messages=HI, max_tokens=8, stream=True) if c.choices)  # fmt: skip
            assert text
        finally:
            stop_server(gateway)
    finally:
        server.kill()
        server.wait()


def test_responses_for_an_upstream_model_keep_their_state_here(fleet) -> None:
    _, up1, _, client = fleet
    first = client.responses.create(model="remote-chat", input="hi there", max_output_tokens=16, temperature=0)
    validate("Response", first.model_dump(mode="json", exclude_unset=True, by_alias=True))
    direct = openai.OpenAI(base_url=up1.base_url, api_key=API_KEY, max_retries=0)
    same = direct.chat.completions.create(model="fake-chat", messages=HI, max_tokens=16, temperature=0)
    assert first.output_text == same.choices[0].message.content  # generated upstream, through chat
    assert first.usage.input_tokens == same.usage.prompt_tokens  # the upstream's own count
    with client.responses.stream(model="remote-chat", input="and again", previous_response_id=first.id,
                                 max_output_tokens=16) as stream:  # fmt: skip
        events = list(stream)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    second = events[-1].response
    assert second.usage.input_tokens > first.usage.input_tokens  # the first turn came from Homeport's store
    assert client.responses.retrieve(second.id).output_text == second.output_text


def test_image_parts_reach_an_upstream_and_stay_a_400_locally(tmp_path) -> None:
    """A vision-capable upstream (a stub speaking chat completions) receives the image part whole;
    a local model answers it with a 400 naming the part."""
    import http.server
    import threading

    received: list[dict] = []

    class Vision(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            received.append(body)
            parts = body["messages"][0]["content"]
            answer = {"id": "chatcmpl-stub", "object": "chat.completion", "created": 1, "model": body["model"],
                      "choices": [{"index": 0, "finish_reason": "stop", "message": {
                          "role": "assistant", "content": f"I see {len(parts) - 1} image(s)"}}],
                      "usage": {"prompt_tokens": 85, "completion_tokens": 4, "total_tokens": 89}}  # fmt: skip
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802  (health checks: GET /models)
            data = json.dumps({"object": "list", "data": [{"id": "vision", "object": "model"}]}).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Vision)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    models = [{"id": "remote-vision", "version": "v1", "kind": "chat", "backend": "upstream",
               "upstreams": [{"base_url": f"http://127.0.0.1:{stub.server_address[1]}/v1", "model": "vision"}]},
              *FAKE]  # fmt: skip
    gateway = start_server(tmp_path, {"models": models})
    try:
        client = openai.OpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0)
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
        content = [{"type": "text", "text": "What is in this picture?"}, image]
        out = client.chat.completions.create(model="remote-vision", messages=[{"role": "user", "content": content}])
        assert out.choices[0].message.content == "I see 1 image(s)" and out.usage.prompt_tokens == 85
        assert received[-1]["messages"][0]["content"][1] == image  # every field as sent
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": content}])
        assert err.value.body["param"] == "messages.[0].content.[1].type"
    finally:
        stop_server(gateway)
        stub.shutdown()
