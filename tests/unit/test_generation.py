"""Text assembly over engine tokens: UTF-8 split across tokens, stop strings across tokens."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator

import pytest

from homeport.backends.base import Finish, GenerationRequest, SamplingParams, Token
from homeport.errors import ContextLengthExceeded, InvalidRequest
from homeport.services.inference.generation import Done, Piece, generate_text, parse_logit_bias, resolve_max_tokens


class ScriptedEngine:
    """Emits the given byte pieces, then finishes; records whether it was closed early."""

    context_length = 100
    vocab_size = 10
    fingerprint = "fp_test"

    def __init__(self, pieces: list[bytes], finish: str = "stop") -> None:
        self.pieces, self.finish, self.closed_early = pieces, finish, False

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token | Finish]:
        try:
            for i, piece in enumerate(self.pieces[: request.sampling.max_tokens]):
                yield Token(i, piece)
            yield Finish(self.finish)  # type: ignore[arg-type]
        except GeneratorExit:
            self.closed_early = True
            raise


async def _run(engine: ScriptedEngine, stops: list[str], max_tokens: int = 50) -> tuple[list[str], Done]:
    texts, done = [], None
    async for item in generate_text(engine, [1], SamplingParams(max_tokens=max_tokens), stops):  # type: ignore[arg-type]
        if isinstance(item, Piece):
            texts.append(item.text)
        else:
            done = item
    assert done is not None
    return texts, done


@pytest.mark.anyio
async def test_multibyte_character_split_across_tokens() -> None:
    euro = "€".encode()
    texts, done = await _run(ScriptedEngine([b"a", euro[:1], euro[1:], b"b"]), [])
    assert "".join(texts) == "a€b"
    assert "\ufffd" not in "".join(texts)
    assert done.completion_tokens == 4 and done.finish_reason == "stop"


@pytest.mark.anyio
async def test_stop_string_across_tokens_is_cut_and_engine_closed() -> None:
    engine = ScriptedEngine([b"Hello ", b"wo", b"rld", b" again", b" more"])
    texts, done = await _run(engine, ["world"])
    assert "".join(texts) == "Hello "
    assert done.finish_reason == "stop" and done.completion_tokens == 3
    assert engine.closed_early


@pytest.mark.anyio
async def test_partial_stop_prefix_is_released_at_the_end() -> None:
    texts, done = await _run(ScriptedEngine([b"abc", b"wor"], finish="length"), ["world"])
    assert "".join(texts) == "abcwor" and done.finish_reason == "length"


@pytest.mark.anyio
async def test_earliest_of_several_stops_wins() -> None:
    texts, _ = await _run(ScriptedEngine([b"one two three"]), ["three", "two"])
    assert "".join(texts) == "one "


def _reference(pieces: list[str], stops: list[str]) -> str:
    """What a stream must show: the text before the first stop to appear (the earliest, of those the
    same token completes), or all of it."""
    text = ""
    for piece in pieces:
        text += piece
        hits = [i for s in stops if (i := text.find(s)) >= 0]
        if hits:
            return text[: min(hits)]
    return text


@pytest.mark.anyio
async def test_streamed_text_matches_the_whole_text_cut_at_its_first_stop() -> None:
    rng = random.Random(7)
    for _ in range(400):
        pieces = ["".join(rng.choice("ab ") for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 12))]
        stops = ["".join(rng.choice("ab ") for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 4))]
        texts, done = await _run(ScriptedEngine([p.encode() for p in pieces], finish="length"), stops)
        expected = _reference(pieces, stops)
        assert "".join(texts) == expected, (pieces, stops)
        assert done.finish_reason == ("length" if expected == "".join(pieces) else "stop"), (pieces, stops)


@pytest.mark.anyio
async def test_a_megabyte_stop_string_costs_each_token_its_own_tail() -> None:
    # The held-back search looked at the whole text for each token: with a stop of a megabyte, 2,000 tokens
    # cost more for each token than the one before (a second in all for these 500; ten times that for 2,000).
    pieces = [b"word "] * 500
    started = time.perf_counter()
    texts, done = await _run(ScriptedEngine(pieces), ["x" * 1_000_000, "word word x"], len(pieces))
    assert "".join(texts) == "word " * 500 and done.finish_reason == "stop"
    alone = time.perf_counter()
    await _run(ScriptedEngine(pieces), [], len(pieces))
    assert time.perf_counter() - alone > (alone - started) / 20


def test_resolve_max_tokens() -> None:
    assert resolve_max_tokens(None, 10, 100, prompt_param="messages", max_param="max_tokens") == 90
    assert resolve_max_tokens(5, 10, 100, prompt_param="messages", max_param="max_tokens") == 5
    with pytest.raises(ContextLengthExceeded) as err:
        resolve_max_tokens(95, 10, 100, prompt_param="messages", max_param="max_tokens")
    assert err.value.param == "max_tokens"
    with pytest.raises(ContextLengthExceeded) as err:
        resolve_max_tokens(None, 100, 100, prompt_param="messages", max_param="max_tokens")
    assert err.value.param == "messages"


def test_parse_logit_bias() -> None:
    assert parse_logit_bias({"3": -100, "4": 2.5}, 10) == {3: -100.0, 4: 2.5}
    for bad in ({"x": 1}, {"10": 1}, {"-1": 1}):
        with pytest.raises(InvalidRequest):
            parse_logit_bias(bad, 10)
