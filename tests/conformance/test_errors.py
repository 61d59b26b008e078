"""Bad input answers like OpenAI: the right status, the SDK's exception class, type/code/param."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from openai import OpenAI

from tests.conftest import API_KEY, create_key, homeport_cli
from tests.spec import validate

CHAT = "smollm2-135m-instruct"
ASK = [{"role": "user", "content": "hi"}]


def _check(err: openai.APIStatusError, status: int, param: str | None, code: str | None = None) -> dict:
    body = err.response.json()
    validate("ErrorResponse", body)
    assert err.status_code == status, body
    assert body["error"]["param"] == param, body
    if code is not None:
        assert body["error"]["code"] == code, body
    assert err.response.headers["x-request-id"]
    return body["error"]


def test_missing_and_wrong_api_key(server) -> None:
    with OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as err:
            bad.models.list()
    _check(err.value, 401, None, "invalid_api_key")
    r = httpx.get(f"{server.base_url}/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_keys_cli_create_and_revoke(server) -> None:
    env = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    secret = create_key(env, "--name", "ci")
    with OpenAI(base_url=server.base_url, api_key=secret, max_retries=0) as c:
        assert c.models.list().data
        listed = homeport_cli(env, "keys", "list")
        assert secret not in listed and secret[:10] in listed
        key_id = next(line.split()[0] for line in listed.splitlines() if line.endswith(" ci"))
        homeport_cli(env, "keys", "revoke", key_id)
        time.sleep(1.1)  # the server trusts a valid key for up to key_cache_s (1 s)
        with pytest.raises(openai.AuthenticationError):
            c.models.list()


@pytest.mark.parametrize("call", ["chat", "completions", "embeddings"])
def test_unknown_model_is_404_model_not_found(client, call: str) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        if call == "chat":
            client.chat.completions.create(model="gpt-9", messages=ASK)
        elif call == "completions":
            client.completions.create(model="gpt-9", prompt="x")
        else:
            client.embeddings.create(model="gpt-9", input="x")
    _check(err.value, 404, "model", "model_not_found")


def test_malformed_json_is_400(server) -> None:
    r = httpx.post(f"{server.base_url}/chat/completions", content=b"{not json",
                   headers={"Authorization": f"Bearer {API_KEY}", "content-type": "application/json"})  # fmt: skip
    assert r.status_code == 400
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"n": 0}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"top_logprobs": 30, "logprobs": True}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"logit_bias": {"not-a-token": 5}}, "logit_bias"),
        ({"logit_bias": {"999999999": 5}}, "logit_bias"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"messages": []}, "messages"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.[0].role"),
        ({"messages": [{"role": "user"}]}, "messages.[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]},
            "messages.[0].content.[0].type",
        ),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
    ],
)
def test_invalid_parameters_are_400_naming_the_param(client, extra: dict, param: str) -> None:
    body = {"model": CHAT, "messages": ASK, **extra}
    named = {k: v for k, v in body.items() if k in ("model", "messages")}
    rest = {k: v for k, v in body.items() if k not in named}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**named, extra_body=rest)
    error = _check(err.value, 400, param)
    assert error["type"] == "invalid_request_error" and error["message"]


def test_unknown_argument_is_400(client) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=CHAT, messages=ASK, extra_body={"frobnicate": 1})
    assert "Unrecognized request argument supplied: frobnicate" in _check(err.value, 400, "frobnicate")["message"]


def test_context_length_exceeded(client) -> None:
    long = "word " * 9000
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": long}])
    _check(err.value, 400, "messages", "context_length_exceeded")
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=CHAT, messages=ASK, max_tokens=9000)
    _check(err.value, 400, "max_tokens", "context_length_exceeded")
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="all-minilm-l6-v2", input=long)
    _check(err.value, 400, "input", "context_length_exceeded")


def test_fifty_thousand_turns_are_refused_while_other_requests_are_served(server, client) -> None:
    """llama.cpp's tokenizer costs the square of a text's special tokens: this conversation took a
    minute to tokenize, on the event loop, and no other request was answered meanwhile. Now it is
    tokenized in pieces, in a worker thread: small requests sent meanwhile are answered at once."""
    turns = [{"role": "user", "content": "a"}] * 50_000  # <|im_start|>user\na<|im_end|>\n: 6 tokens a turn
    with ThreadPoolExecutor(1) as pool:
        began = time.monotonic()
        big = pool.submit(client.chat.completions.create, model=CHAT, messages=turns, max_tokens=2)
        waits = []
        while not big.done():
            sent = time.monotonic()
            assert client.models.list().data
            waits.append(time.monotonic() - sent)
        with pytest.raises(openai.BadRequestError) as err:
            big.result()
        took = time.monotonic() - began
    error = _check(err.value, 400, "messages", "context_length_exceeded")
    assert "you requested 300027 tokens (300025 in the messages, 2 in the completion)" in error["message"]
    # Parsing the 1.6 MB body still holds the loop for a moment; tokenizing no longer does.
    assert len(waits) >= 3 and max(waits) < took / 3, (took, sorted(waits)[-3:])


def test_completions_specific_errors(client) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=CHAT, prompt="x", echo=True, logprobs=1)
    _check(err.value, 400, "echo")
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=CHAT, prompt="x", suffix="y")
    _check(err.value, 400, "suffix", "unsupported_parameter")
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=CHAT, prompt=[10**9])
    _check(err.value, 400, "prompt")


def test_wrong_kind_of_model(client) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="all-minilm-l6-v2", messages=ASK)
    _check(err.value, 400, "model")
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=CHAT, input="x")
    _check(err.value, 400, "model")


def test_embedding_input_errors(client) -> None:
    for bad, param in (("", "input"), ([""], "input"), ([10**9], "input")):
        with pytest.raises(openai.BadRequestError) as err:
            client.embeddings.create(model="all-minilm-l6-v2", input=bad)
        _check(err.value, 400, param)


def test_request_too_large_is_413(client) -> None:
    huge = "x" * 2_100_000  # the test server's limit is 2,000,000 bytes
    with pytest.raises(openai.APIStatusError) as err:
        client.embeddings.create(model="all-minilm-l6-v2", input=huge)
    _check(err.value, 413, None)


def test_unknown_route_is_openai_shaped_404(server) -> None:
    r = httpx.get(f"{server.base_url}/nothing-here", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 404
    validate("ErrorResponse", r.json())


def test_server_keeps_serving_after_bad_input(client) -> None:
    out = client.chat.completions.create(model=CHAT, messages=ASK, max_tokens=3)
    assert out.choices[0].message.content is not None


def test_chunked_body_over_the_limit_is_413(server) -> None:
    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"model": "all-minilm-l6-v2", "input": "'
        for _ in range(2100):
            yield b"x" * 1000
        yield b'"}'

    r = httpx.post(f"{server.base_url}/embeddings", content=chunks(),
                   headers={"Authorization": f"Bearer {API_KEY}", "content-type": "application/json"})  # fmt: skip
    assert r.status_code == 413
    validate("ErrorResponse", r.json())
