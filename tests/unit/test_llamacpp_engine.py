"""The embedded llama.cpp engine: bounded queue, cancellation, seeds, logprobs."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from homeport.backends.base import Finish, GenerationRequest, Message, SamplingParams, Token
from homeport.backends.llamacpp import LlamaCppEngine
from homeport.errors import EngineOverloaded
from homeport.services.models import locate_weights
from homeport.settings import DEFAULT_MODELS, EngineSettings


@pytest.fixture(scope="module")
def engine() -> LlamaCppEngine:
    path = locate_weights(DEFAULT_MODELS[0], Path("/nonexistent"))
    return LlamaCppEngine(path, settings=EngineSettings(queue_size=1))


def _request(engine: LlamaCppEngine, max_tokens: int, **kw) -> GenerationRequest:
    prompt = engine.apply_chat_template([Message("user", "Write a long story.")])
    return GenerationRequest(prompt, SamplingParams(max_tokens=max_tokens, **kw))


async def _collect(engine: LlamaCppEngine, request: GenerationRequest) -> list[Token | Finish]:
    return [item async for item in engine.generate(request)]


def test_template_comes_from_the_gguf(engine: LlamaCppEngine) -> None:
    ids = engine.apply_chat_template([Message("user", "Hi")])
    text = b"".join(engine.token_piece(i) for i in ids).decode()
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.anyio
async def test_full_queue_answers_overloaded(engine: LlamaCppEngine) -> None:
    running = engine.generate(_request(engine, 2000))
    await anext(running)  # one running
    waiting = asyncio.create_task(_collect(engine, _request(engine, 3)))  # one waiting (queue_size=1)
    await asyncio.sleep(0.05)
    with pytest.raises(EngineOverloaded) as err:
        await anext(engine.generate(_request(engine, 3)))
    assert err.value.retry_after
    await running.aclose()  # cancels the long generation; the waiting one then runs
    items = await asyncio.wait_for(waiting, timeout=30)
    assert isinstance(items[-1], Finish)


@pytest.mark.anyio
async def test_closing_the_iterator_stops_decoding(engine: LlamaCppEngine) -> None:
    gen = engine.generate(_request(engine, 5000))
    for _ in range(3):
        await anext(gen)
    await gen.aclose()
    # The worker sees the flag at its next token: the next request starts right away.
    items = await asyncio.wait_for(_collect(engine, _request(engine, 2)), timeout=10)
    assert len(items) == 3 and items[-1] == Finish("length")


@pytest.mark.anyio
async def test_seed_reproduces_after_other_requests(engine: LlamaCppEngine) -> None:
    seeded = _request(engine, 30, temperature=1.0, seed=42)
    first = await _collect(engine, seeded)
    await _collect(engine, _request(engine, 5, temperature=1.0))
    again = await _collect(engine, seeded)
    assert [t.id for t in first if isinstance(t, Token)] == [t.id for t in again if isinstance(t, Token)]


@pytest.mark.anyio
async def test_logprobs_are_a_distribution(engine: LlamaCppEngine) -> None:
    items = await _collect(engine, _request(engine, 3, temperature=0, top_logprobs=5))
    for token in (t for t in items if isinstance(t, Token)):
        assert token.top is not None and len(token.top) == 5
        assert math.isclose(token.logprob, token.top[0][1], abs_tol=1e-5)  # greedy = most likely
        assert sum(math.exp(lp) for _, lp in token.top) <= 1.0 + 1e-5


@pytest.mark.anyio
@pytest.mark.parametrize("temperature", [0.0, 1.0])
async def test_grammar_is_enforced_on_both_sampling_paths(engine: LlamaCppEngine, temperature: float) -> None:
    # The model would rather say something else: every token goes through the grammar check.
    grammar = 'root ::= "maybe" | "perhaps so"'
    for seed in range(4):
        items = await _collect(engine, _request(engine, 20, temperature=temperature, seed=seed, grammar=grammar))
        text = b"".join(t.piece for t in items if isinstance(t, Token)).decode()
        assert text in ("maybe", "perhaps so") and items[-1] == Finish("stop")


@pytest.mark.anyio
async def test_bad_grammar_is_an_invalid_request(engine: LlamaCppEngine) -> None:
    from homeport.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        await _collect(engine, _request(engine, 5, grammar="root ::= (unclosed"))
    assert len(await _collect(engine, _request(engine, 2))) == 3  # the engine still serves
