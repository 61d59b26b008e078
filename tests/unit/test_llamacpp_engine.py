"""The embedded llama.cpp engine: continuous batching, bounded queue, cancellation, seeds,
prefix caching, logprobs, grammars."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from homeport.backends.base import (
    Finish,
    GenerationRequest,
    Message,
    SamplingParams,
    Token,
    arrivals,
    background_work,
)
from homeport.backends.constraints import OutputConstraint
from homeport.backends.llamacpp import batching
from homeport.backends.llamacpp.engine import LlamaCppEngine
from homeport.errors import EngineOverloaded
from homeport.services.inference.registry import locate_weights
from homeport.settings import DEFAULT_MODELS, EngineSettings

UNREADABLE = {"type": "string", "pattern": "^[a$"}


@pytest.fixture(scope="module")
def engine() -> LlamaCppEngine:
    path = locate_weights(DEFAULT_MODELS[0], Path("/nonexistent"))
    return LlamaCppEngine(path, settings=EngineSettings(slots=2, queue_size=1), context_length=2048)


@pytest.fixture(scope="module")
def wide() -> LlamaCppEngine:
    path = locate_weights(DEFAULT_MODELS[0], Path("/nonexistent"))
    return LlamaCppEngine(path, settings=EngineSettings(slots=8, batch_size=64), context_length=2048)


def _request(engine: LlamaCppEngine, max_tokens: int, text: str = "Write a long story.", **kw) -> GenerationRequest:
    prompt = engine.apply_chat_template([Message("user", text)])
    return GenerationRequest(prompt, SamplingParams(max_tokens=max_tokens, **kw))


def _ids(items: list[Token | Finish]) -> list[int]:
    return [t.id for t in items if isinstance(t, Token)]


async def _collect(engine: LlamaCppEngine, request: GenerationRequest) -> list[Token | Finish]:
    return [item async for item in engine.generate(request)]


def test_template_comes_from_the_gguf(engine: LlamaCppEngine) -> None:
    ids = engine.apply_chat_template([Message("user", "Hi")])
    text = b"".join(engine.token_piece(i) for i in ids).decode()
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.anyio
async def test_full_queue_answers_overloaded(engine: LlamaCppEngine) -> None:
    running = [engine.generate(_request(engine, 1500)) for _ in range(2)]
    for gen in running:
        await anext(gen)  # both slots busy
    waiting = asyncio.create_task(_collect(engine, _request(engine, 3)))  # one waiting (queue_size=1)
    await asyncio.sleep(0.05)
    assert engine.stats()["slots_busy"] == 2 and engine.stats()["queue_depth"] == 1
    with pytest.raises(EngineOverloaded) as err:
        await anext(engine.generate(_request(engine, 3)))
    assert err.value.retry_after
    await running[0].aclose()  # frees a slot at the next step; the waiting one takes it
    items = await asyncio.wait_for(waiting, timeout=30)
    assert isinstance(items[-1], Finish)
    await running[1].aclose()


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
    assert _ids(first) == _ids(again)


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
    only = OutputConstraint(answer={"enum": ["maybe", "perhaps so"]})
    for seed in range(4):
        items = await _collect(engine, _request(engine, 20, temperature=temperature, seed=seed, constraint=only))
        text = b"".join(t.piece for t in items if isinstance(t, Token)).decode()
        assert text in ('"maybe"', '"perhaps so"') and items[-1] == Finish("stop")


@pytest.mark.anyio
async def test_bad_grammar_is_an_invalid_request(engine: LlamaCppEngine) -> None:
    from homeport.errors import InvalidRequest

    with pytest.raises(InvalidRequest):  # a pattern llama.cpp's schema converter cannot read
        await _collect(engine, _request(engine, 5, constraint=OutputConstraint(answer=UNREADABLE)))
    assert len(await _collect(engine, _request(engine, 2))) == 3  # the engine still serves


@pytest.mark.anyio
async def test_concurrent_requests_are_decoded_together(wide: LlamaCppEngine) -> None:
    before = wide.stats()
    no_end = {wide.eos_token: -100.0}  # every request runs its full 24 tokens
    results = await asyncio.gather(
        *(_collect(wide, _request(wide, 24, f"Tell story {i}.", logit_bias=no_end)) for i in range(8))
    )
    after = wide.stats()
    tokens = after["generated_tokens"] - before["generated_tokens"]
    steps = after["decode_steps"] - before["decode_steps"]
    assert all(len(r) == 25 for r in results) and tokens == 8 * 24
    assert steps < tokens / 4  # one-at-a-time decoding would take a step per token


@pytest.mark.anyio
async def test_a_seed_gives_the_same_tokens_alone_and_in_a_full_batch(wide: LlamaCppEngine) -> None:
    seeded = [_request(wide, 40, f"Tell story {i}.", temperature=1.0, seed=i) for i in range(8)]
    alone = [await _collect(wide, r) for r in seeded]
    together = await asyncio.gather(*(_collect(wide, r) for r in seeded))
    shuffled = await asyncio.gather(*(_collect(wide, r) for r in reversed(seeded)))
    assert [_ids(a) for a in alone] == [_ids(t) for t in together] == [_ids(s) for s in reversed(shuffled)]


@pytest.mark.anyio
async def test_a_shared_prefix_is_reused_and_reported(wide: LlamaCppEngine) -> None:
    system = "You are a helpful assistant who answers in one short sentence. " * 8
    first = GenerationRequest(wide.apply_chat_template([Message("system", system), Message("user", "Hi.")]),
                              SamplingParams(max_tokens=4, temperature=0))  # fmt: skip
    second = GenerationRequest(wide.apply_chat_template([Message("system", system), Message("user", "Bye.")]),
                               SamplingParams(max_tokens=4, temperature=0))  # fmt: skip
    cold = await _collect(wide, first)
    again = GenerationRequest(first.prompt, first.sampling)
    warm = await _collect(wide, again)
    await _collect(wide, second)
    shared = next(i for i, (a, b) in enumerate(zip(first.prompt, second.prompt, strict=False)) if a != b)
    assert first.info.cached_tokens < shared  # nothing of it was cached before (other prompts ran)
    assert again.info.cached_tokens == len(first.prompt) - 1  # all but the last token, for fresh logits
    assert second.info.cached_tokens == shared
    assert _ids(cold) == _ids(warm)


@pytest.mark.anyio
async def test_a_system_prompt_shared_by_concurrent_requests_is_read_once(wide: LlamaCppEngine) -> None:
    system = "You are the harbour master of Port Ellis. You answer with a berth number and a reason. " * 6
    requests = [
        GenerationRequest(
            wide.apply_chat_template([Message("system", system), Message("user", f"Ship {i} arrives.")]),
            SamplingParams(max_tokens=8, temperature=0),
        )  # fmt: skip
        for i in range(4)
    ]
    shared = next(
        i for i, column in enumerate(zip(*(r.prompt for r in requests), strict=False)) if len(set(column)) > 1
    )
    assert shared > 100
    before = wide.stats()
    together = await asyncio.gather(*(_collect(wide, r) for r in requests))
    read = wide.stats()["batch_tokens"] - before["batch_tokens"] - sum(len(_ids(t)) for t in together)
    cached = sorted(r.info.cached_tokens for r in requests)
    assert cached[0] < shared <= cached[1]  # one request read the system prompt; the others got a copy
    assert read < len(requests[0].prompt) + 3 * (len(requests[0].prompt) - shared) + 8
    alone = [await _collect(wide, GenerationRequest(r.prompt, r.sampling)) for r in requests]
    assert [_ids(t) for t in together] == [_ids(a) for a in alone]  # a copied cache gives the same tokens


@pytest.mark.anyio
async def test_a_long_prompt_does_not_stall_a_running_stream(wide: LlamaCppEngine) -> None:
    stream = wide.generate(_request(wide, 400))
    await anext(stream)
    long_prompt = _request(wide, 1, "Summarise: " + "the quick brown fox jumps over the lazy dog " * 120)
    assert len(long_prompt.prompt) > 1000  # read 64 tokens per step (batch_size=64)
    reading = asyncio.create_task(_collect(wide, long_prompt))
    streamed = 0
    while not reading.done():
        await anext(stream)
        streamed += 1
    await stream.aclose()
    assert streamed >= 10  # the stream kept getting tokens while the prompt was read


async def _until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.anyio
async def test_requests_arriving_together_start_in_one_step(wide: LlamaCppEngine, monkeypatch) -> None:
    """Starting from idle, the engine waits while requests are still on their way to it (being
    parsed and planned), so a burst starts in one step instead of the first alone (batching._GATHER_S)."""
    monkeypatch.setattr(batching, "_GATHER_S", 60.0)  # the test says when the second one is in
    first, second = _request(wide, 4, "Tell story A."), _request(wide, 4, "Tell story B.")
    await _until(lambda: wide.queue_depth() == 0)  # idle (a stream closed before is freed at the next step)
    with arrivals.arriving():  # the second request, still being read
        a = asyncio.create_task(_collect(wide, first))
        await _until(lambda: first.info.queued_ns > 0)
        await asyncio.sleep(0.3)  # time enough to start it, were the engine not waiting
        assert first.info.started_ns == 0
        b = asyncio.create_task(_collect(wide, second))
        await _until(lambda: second.info.queued_ns > 0)
    await asyncio.gather(a, b)
    assert first.info.started_ns >= second.info.queued_ns


@pytest.mark.anyio
async def test_a_request_left_on_its_way_delays_an_idle_start_only_briefly(wide: LlamaCppEngine, monkeypatch) -> None:
    monkeypatch.setattr(batching, "_GATHER_S", 0.3)
    request = _request(wide, 2)
    await _until(lambda: wide.queue_depth() == 0)
    with arrivals.arriving():  # never handed over
        items = await _collect(wide, request)
    assert isinstance(items[-1], Finish)
    assert request.info.started_ns - request.info.queued_ns >= 0.3e9


@pytest.mark.anyio
async def test_every_engine_decodes_on_one_thread(engine: LlamaCppEngine, wide: LlamaCppEngine) -> None:
    """Two threads calling llama.cpp give the process two OpenMP teams, and libgomp then stops
    spinning at barriers (slower decoding for every model): all engines share one thread."""
    seen: set[int] = set()
    originals = [(e.scheduler, e.scheduler._decode) for e in (engine, wide)]
    for scheduler, decode in originals:

        def recording(decode=decode) -> None:  # type: ignore[no-untyped-def]
            seen.add(threading.get_ident())
            decode()

        scheduler._decode = recording  # type: ignore[method-assign]
    try:
        await asyncio.gather(_collect(engine, _request(engine, 4)), _collect(wide, _request(wide, 4)))
    finally:
        for scheduler, decode in originals:
            scheduler._decode = decode  # type: ignore[method-assign]
    assert len(seen) == 1 and threading.get_ident() not in seen


@pytest.mark.anyio
async def test_running_sequences_sit_in_consecutive_slots_in_order(wide: LlamaCppEngine) -> None:
    """llama.cpp puts only consecutive, increasing sequence ids into one ubatch: a step over slots
    1-7 then 0 would run two graphs. 8 streams, then 1 (it reuses a slot), then 8 again."""
    scheduler, decode = wide.scheduler, wide.scheduler._decode
    steps: list[list[int]] = []

    def recording() -> None:
        batch = scheduler._batch
        ids = [batch.seq_id[i][0] for i in range(batch.n_tokens)]
        if len(set(ids)) == len(ids):  # every sequence generating: one token each
            steps.append(ids)
        decode()

    no_end = {wide.eos_token: -100.0}
    scheduler._decode = recording  # type: ignore[method-assign]
    try:
        for count in (8, 1, 8):
            # One prompt for all: every free slot holds it, so the slot order is up to the scheduler.
            await asyncio.gather(*(_collect(wide, _request(wide, 6, "Tell a story.", logit_bias=no_end))
                                   for _ in range(count)))  # fmt: skip
    finally:
        scheduler._decode = decode  # type: ignore[method-assign]
    assert steps and all(ids == list(range(ids[0], ids[0] + len(ids))) for ids in steps)
    assert max(len(ids) for ids in steps) == 8


def test_a_new_request_keeps_the_busy_slots_together() -> None:
    from homeport.backends.llamacpp.batching import _runs

    busy = [True, False, False, True, True, False, False, False]
    assert [_runs(busy, i) for i in (1, 2, 5, 7)] == [2, 2, 2, 3]
    assert _runs([False] * 4, 2) == 1 and _runs([True, True, False, False], 2) == 1


async def _background(engine: LlamaCppEngine, request: GenerationRequest) -> list[Token | Finish]:
    with background_work():
        return [item async for item in engine.generate(request)]


@pytest.mark.anyio
async def test_batch_lines_yield_their_slot_to_an_interactive_request_and_resume(engine: LlamaCppEngine) -> None:
    """Both slots held by batch lines: an interactive request is admitted at the next step (a batch
    line is preempted), and the preempted line resumes where it was: greedy, its tokens are the
    ones it gives undisturbed."""
    ban_eos = {engine._llm.token_eos(): -100.0}  # every line runs its full length
    alone = _ids(await _background(engine, _request(engine, 60, "Count to fifty.", temperature=0.0,
                                                    logit_bias=ban_eos)))  # fmt: skip
    before = engine.stats()["preemptions"]
    lines = [asyncio.create_task(_background(engine, _request(engine, 60, text, temperature=0.0, logit_bias=ban_eos)))
             for text in ("Count to fifty.", "Name the planets.")]  # fmt: skip
    while engine.scheduler.slots_busy() < 2 or not all(s.generated for s in engine.scheduler._running):
        await asyncio.sleep(0.01)
    steps = engine.scheduler.steps
    interactive = engine.generate(_request(engine, 3, "Hi"))
    first = await anext(interactive)
    await interactive.aclose()
    assert isinstance(first, Token)
    assert engine.scheduler.steps - steps <= 2  # admitted at the next step, its first token sampled in it
    assert engine.stats()["preemptions"] == before + 1
    counted, planets = await asyncio.gather(*lines)
    assert len(_ids(counted)) == len(_ids(planets)) == 60
    assert _ids(counted) == alone
