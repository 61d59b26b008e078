"""POST /v1/completions (legacy) through the official SDK."""

from __future__ import annotations

from tests.spec import validate, wire

MODEL = "smollm2-135m-instruct"


def test_text_completion(client) -> None:
    out = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    validate("CreateCompletionResponse", wire(out))
    assert out.object == "text_completion" and out.id.startswith("cmpl-")
    assert out.choices[0].text and out.choices[0].finish_reason in ("stop", "length")
    assert out.usage.prompt_tokens == 5 and out.usage.completion_tokens <= 8


def test_default_max_tokens_is_16(client) -> None:
    out = client.completions.create(model=MODEL, prompt="Once upon a time", temperature=0)
    assert out.usage.completion_tokens <= 16


def test_echo_prepends_prompt(client) -> None:
    out = client.completions.create(model=MODEL, prompt="Hello there,", max_tokens=4, echo=True, temperature=0)
    assert out.choices[0].text.startswith("Hello there,")
    zero = client.completions.create(model=MODEL, prompt="Just the prompt", max_tokens=0, echo=True)
    assert zero.choices[0].text == "Just the prompt"


def test_logprobs(client) -> None:
    out = client.completions.create(model=MODEL, prompt="1, 2, 3,", max_tokens=5, logprobs=2, temperature=0)
    validate("CreateCompletionResponse", wire(out))
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert "".join(lp.tokens) == out.choices[0].text
    assert all(len(top) <= 2 for top in lp.top_logprobs)
    assert lp.text_offset[0] == 0


def test_multiple_prompts_token_prompts_and_n(client) -> None:
    out = client.completions.create(model=MODEL, prompt=["One", "Two"], n=2, max_tokens=3, seed=1)
    assert [c.index for c in out.choices] == [0, 1, 2, 3]
    tokens = client.completions.create(model=MODEL, prompt=[[504, 3485], [504]], max_tokens=2)
    assert len(tokens.choices) == 2 and tokens.usage.prompt_tokens == 3


def test_streaming(client) -> None:
    chunks = list(
        client.completions.create(
            model=MODEL, prompt="Once upon a time", max_tokens=6, stream=True, stream_options={"include_usage": True}
        )
    )
    for chunk in chunks:
        validate("CreateCompletionResponse", _as_final(wire(chunk)))
    *body, usage = chunks
    assert all(c.choices[0].finish_reason is None for c in body[:-1])
    assert body[-1].choices[0].finish_reason in ("stop", "length")
    assert usage.usage.completion_tokens <= 6 and usage.choices == []
    assert "".join(c.choices[0].text for c in body)


def _as_final(chunk: dict) -> dict:
    """The spec has no stream schema for legacy completions; like api.openai.com, Homeport
    streams `finish_reason: null` until the last chunk. Everything else is checked as is."""
    for choice in chunk["choices"]:
        if choice["finish_reason"] is None:
            choice["finish_reason"] = "stop"
    return chunk
