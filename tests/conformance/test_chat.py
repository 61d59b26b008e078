"""POST /v1/chat/completions through the official SDK, on the real default chat model."""

from __future__ import annotations

import asyncio
import math
import time

import httpx
import pytest

from tests.conftest import API_KEY
from tests.spec import validate, wire

MODEL = "smollm2-135m-instruct"
ASK = [{"role": "user", "content": "Name three colors."}]


def test_basic_completion_shape_and_usage(client) -> None:
    out = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is the capital"}, {"type": "text", "text": "of France?"}],
            },
            {"role": "assistant", "content": "Do you mean today?"},
            {"role": "user", "content": "Yes."},
        ],
        max_tokens=40,
        user="u-1",
        metadata={"purpose": "test"},
    )
    validate("CreateChatCompletionResponse", wire(out))
    assert out.id.startswith("chatcmpl-") and out.object == "chat.completion"
    assert out.system_fingerprint and out.created > 0
    choice = out.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert out.usage.prompt_tokens > 20  # the whole rendered conversation, counted by the model's tokenizer
    assert 0 < out.usage.completion_tokens <= 40
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_length_finish_reason_and_max_completion_tokens(client) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_completion_tokens=5,
    )  # fmt: skip
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 5


def test_stop_string_ends_output_before_it(client) -> None:
    base = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=30, temperature=0)
    text = base.choices[0].message.content
    assert len(text) > 4
    stop = text[2:4]
    out = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=30, temperature=0, stop=[stop, "zzzz"])
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content == text[: text.index(stop)]
    single = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=30, temperature=0, stop=stop)
    assert single.choices[0].message.content == out.choices[0].message.content


def test_n_choices(client) -> None:
    out = client.chat.completions.create(model=MODEL, messages=ASK, n=3, max_tokens=8, temperature=1.0, seed=7)
    validate("CreateChatCompletionResponse", wire(out))
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert len({c.message.content for c in out.choices}) > 1  # different samples
    assert out.usage.completion_tokens <= 24


def test_same_seed_same_output(client) -> None:
    kwargs = dict(
        model=MODEL,
        messages=[{"role": "user", "content": "Tell me a story."}],
        max_tokens=40,
        temperature=1.0,
        seed=1234,
    )
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=5)  # disturb the engine's cache
    again = client.chat.completions.create(**kwargs).choices[0].message.content
    assert first == again
    other = client.chat.completions.create(**{**kwargs, "seed": 99}).choices[0].message.content
    assert other != first


def test_sampling_parameters_accepted_and_effective(client) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=10, temperature=0.5, top_p=0.9,
        presence_penalty=1.0, frequency_penalty=0.5,
    )  # fmt: skip
    assert out.choices[0].message.content
    # logit_bias: banning the greedy first token changes the first token.
    greedy = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1, temperature=0, logprobs=True)
    first = greedy.choices[0].logprobs.content[0]
    token_id = _token_id(first.token)
    banned = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=1, temperature=0, logprobs=True, logit_bias={str(token_id): -100}
    )
    assert banned.choices[0].logprobs.content[0].token != first.token


def _token_id(token: str) -> int:
    """The id of a token, from the same GGUF's vocabulary (loaded vocab-only, in the test)."""
    from llama_cpp import Llama

    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS

    path = locate_weights(DEFAULT_MODELS[0], data_dir=None)  # type: ignore[arg-type]
    vocab = Llama(str(path), vocab_only=True, verbose=False)
    ids = vocab.tokenize(token.encode(), add_bos=False, special=False)
    assert len(ids) == 1, (token, ids)
    return ids[0]


def test_logprobs_and_top_logprobs(client) -> None:
    out = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=6, logprobs=True, top_logprobs=3, temperature=0
    )
    validate("CreateChatCompletionResponse", wire(out))
    content = out.choices[0].logprobs.content
    assert len(content) == out.usage.completion_tokens
    assert "".join(t.token for t in content) == out.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0 and bytes(entry.bytes).decode("utf-8", "replace") == entry.token
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[-1].logprob
        # Greedy decoding picks the most likely token.
        assert math.isclose(entry.logprob, entry.top_logprobs[0].logprob, abs_tol=1e-4)


def test_no_logprobs_field_is_null(client) -> None:
    out = client.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, max_tokens=2)
    body = out.http_response.json()
    assert body["choices"][0]["logprobs"] is None
    assert body["choices"][0]["message"]["refusal"] is None
    assert out.http_response.headers["x-request-id"].startswith("req_")


def test_streaming_chunk_order_and_usage(client) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=12, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", wire(chunk))
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    *body, finish, usage = chunks
    assert finish.choices[0].finish_reason in ("stop", "length")
    assert all(c.choices[0].finish_reason is None for c in body)
    assert usage.choices == [] and usage.usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert usage.usage.completion_tokens <= 12 and text
    plain = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=12, stream=True)
    assert all(c.usage is None for c in plain)


def test_streaming_raw_sse_framing(server) -> None:
    body = {"model": MODEL, "messages": ASK, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as r:  # fmt: skip
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


def test_streaming_n_and_logprobs(client) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=4, stream=True, n=2, logprobs=True, seed=3
    )
    chunks = list(stream)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", wire(chunk))
    finishes = [c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason]
    assert sorted(finishes) == [0, 1]
    with_text = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert all(c.choices[0].logprobs and c.choices[0].logprobs.content for c in with_text)


def test_stream_helper_accumulates(client) -> None:
    with client.chat.completions.stream(model=MODEL, messages=ASK, max_tokens=10) as stream:
        events = [event.type for event in stream]
        snapshot = stream.current_completion_snapshot
    assert "content.delta" in events and "chunk" in events
    assert snapshot.choices[0].message.content


@pytest.mark.anyio
async def test_async_client_and_concurrency(aclient) -> None:
    prompts = [f"Count to {i}." for i in range(2, 8)]

    async def one(prompt: str, stream: bool) -> str:
        messages = [{"role": "user", "content": prompt}]
        if not stream:
            out = await aclient.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, seed=5)
            return out.choices[0].message.content
        parts = []
        async for chunk in await aclient.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=12, seed=5, stream=True
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    # Eight concurrent requests (half streaming): every one completes, none is cut off, and
    # each equals the same request served alone (no cross-talk between requests).
    results = await asyncio.gather(*(one(p, i % 2 == 0) for i, p in enumerate(prompts + prompts[:2])))
    alone = [await one(p, False) for p in prompts[:2]]
    assert all(results)
    assert results[0] == alone[0] and results[1] == alone[1]


def test_client_disconnect_frees_the_engine(server, client) -> None:
    from tests.conformance.test_metrics import _samples

    slots = ("homeport_engine_slots_busy", (("model", MODEL),))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Write a very long essay."}],
            "max_tokens": 3000, "stream": True, "temperature": 1.0}  # fmt: skip
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as r:  # fmt: skip
        for i, _ in enumerate(r.iter_lines()):
            if i > 10:
                assert _samples(server)[slots] == 1  # decoding for this stream
                break  # leave mid-stream: the connection closes here
    # 3000 tokens take ~30 s at this model's speed; the slot is freed at the engine's next step.
    deadline = time.monotonic() + 5
    while _samples(server)[slots] != 0:
        assert time.monotonic() < deadline, "the slot stayed busy after the client left"
        time.sleep(0.05)
    out = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
    assert out.choices[0].message.content is not None


def test_a_non_streamed_request_whose_client_left_frees_the_engine(server, client) -> None:
    """A client that times out on a long non-streamed answer (the SDK's timeout, then its retry)
    must not leave the engine generating for nobody: the slot frees at once, usage says 499."""
    from tests.conformance.test_metrics import _samples

    slots = ("homeport_engine_slots_busy", (("model", MODEL),))
    no_end = {"0": -100, "2": -100}  # <|endoftext|> and <|im_end|>: it writes all 3000 tokens (~30 s)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Write a very long essay."}],
            "max_tokens": 3000, "logit_bias": no_end}  # fmt: skip
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes the connection
        httpx.post(f"{server.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"},
                   timeout=3)  # fmt: skip
    deadline = time.monotonic() + 10  # far less than the ~27 s of generation left
    while _samples(server)[slots] != 0:
        assert time.monotonic() < deadline, "the slot stayed busy after the client left"
        time.sleep(0.05)
    out = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=4)
    assert out.choices[0].message.content is not None


def test_same_seed_same_tokens_alone_and_among_concurrent_requests(server) -> None:
    import openai

    def ask(i: int) -> dict:
        return dict(model=MODEL, messages=[{"role": "user", "content": f"Tell me story number {i}."}],
                    max_tokens=32, temperature=1.0, seed=i)  # fmt: skip

    sync = openai.OpenAI(base_url=server.base_url, api_key=API_KEY)
    alone = [sync.chat.completions.create(**ask(i)).choices[0].message.content for i in range(8)]

    async def together() -> list[str | None]:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY) as client:
            outs = await asyncio.gather(*(client.chat.completions.create(**ask(i)) for i in range(8)))
        return [o.choices[0].message.content for o in outs]

    assert asyncio.run(together()) == alone  # batched with 7 others, each request samples the same tokens


def test_a_repeated_prompt_prefix_is_served_from_the_kv_cache(client) -> None:
    system = {"role": "system", "content": "You are a terse assistant. Answer in five words or fewer. " * 6}
    client.chat.completions.create(model=MODEL, messages=[system, {"role": "user", "content": "Hi!"}],
                                           max_tokens=5, temperature=0)  # fmt: skip
    second = client.chat.completions.create(model=MODEL, messages=[system, {"role": "user", "content": "Bye!"}],
                                            max_tokens=5, temperature=0)  # fmt: skip
    validate("CreateChatCompletionResponse", wire(second))
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert 40 < cached < second.usage.prompt_tokens  # the system prompt, not the new question
