"""From engine tokens to text: incremental UTF-8 decoding, stop strings, token accounting.

Shared by chat and legacy completions. A token may end inside a UTF-8 character, and a stop
string may span tokens, so text is released only once it can no longer turn out to be the
start of a stop string.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ... import tracing
from ...backends.base import ChatEngine, Finish, GenerationRequest, SamplingParams, Token
from ...errors import ContextLengthExceeded, InvalidRequest
from ...settings import ModelConfig

__all__ = [
    "Piece",
    "Done",
    "check_stream_options",
    "generate_text",
    "generate_whole",
    "Whole",
    "resolve_max_tokens",
    "parse_logit_bias",
    "sampling_params",
    "stop_list",
]


@dataclass
class Piece:
    """Newly released text and the tokens sampled since the last piece."""

    text: str
    tokens: list[Token]


@dataclass
class Done:
    finish_reason: str
    completion_tokens: int
    tokens: list[Token] = field(default_factory=list)
    cached_tokens: int = 0


async def generate_text(
    engine: ChatEngine, prompt: list[int], sampling: SamplingParams, stops: list[str]
) -> AsyncGenerator[Piece | Done, None]:
    """Yield Pieces, then one Done. Closing early stops the engine."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text, sent, count = "", 0, 0
    pending: list[Token] = []
    request = GenerationRequest(prompt, sampling)
    generation = engine.generate(request)
    assert isinstance(generation, AsyncGenerator)
    try:
        async for item in generation:
            if isinstance(item, Finish):
                tracing.engine_spans(request.info, count)
                text += decoder.decode(b"", final=True)
                if sent < len(text):
                    yield Piece(text[sent:], pending)
                    pending = []
                yield Done(item.reason, count, pending, request.info.cached_tokens)
                return
            count += 1
            pending.append(item)
            text += decoder.decode(item.piece)
            hit = _find_stop(text, sent, stops)
            if hit is not None:
                if hit > sent:
                    yield Piece(text[sent:hit], pending)
                    pending = []
                tracing.engine_spans(request.info, count)
                yield Done("stop", count, pending, request.info.cached_tokens)
                return
            safe = len(text) - _held_back(text, sent, stops)
            if safe > sent:
                yield Piece(text[sent:safe], pending)
                sent, pending = safe, []
    finally:
        await generation.aclose()


@dataclass
class Whole:
    """A generation collected whole (non-streaming answers)."""

    text: str
    tokens: list[Token]
    finish_reason: str
    completion_tokens: int
    cached_tokens: int


async def generate_whole(engine: ChatEngine, prompt: list[int], sampling: SamplingParams, stops: list[str]) -> Whole:
    text, tokens = "", []
    async for item in generate_text(engine, prompt, sampling, stops):
        tokens += item.tokens
        if isinstance(item, Piece):
            text += item.text
        else:
            return Whole(text, tokens, item.finish_reason, item.completion_tokens, item.cached_tokens)
    raise AssertionError("a generation ends with Done")


def _find_stop(text: str, sent: int, stops: list[str]) -> int | None:
    # A stop cannot start before `sent`: text was sent only once no stop could start in it (`_held_back`).
    hits = [i for s in stops if (i := text.find(s, sent)) >= 0]
    return min(hits) if hits else None


def _held_back(text: str, sent: int, stops: list[str]) -> int:
    """Length of the longest suffix of `text[sent:]` that is a proper prefix of a stop string.

    Only the unsent tail is searched, so a token costs its tail, not the whole text times a stop's
    length (with a stop string of a megabyte, 2,000 tokens used to cost 6 s of event loop, each
    token more than the one before).
    """
    end = len(text)
    for start in range(max(sent, end - max(map(len, stops), default=0) + 1), end):
        tail = text[start:]
        if any(len(stop) > len(tail) and stop.startswith(tail) for stop in stops):
            return end - start
    return 0


def check_stream_options(stream: bool | None, options: object) -> None:
    if options is not None and not stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )


def stop_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    return [s for s in stops if s]


def resolve_max_tokens(
    requested: int | None, prompt_tokens: int, context_length: int, *, prompt_param: str, max_param: str
) -> int:
    """OpenAI's rule: prompt + max output must fit the context; unset means 'the rest'."""
    if prompt_tokens >= context_length or (requested is not None and prompt_tokens + requested > context_length):
        wanted = prompt_tokens + (requested or 0)
        raise ContextLengthExceeded(
            f"This model's maximum context length is {context_length} tokens. However, you requested "
            f"{wanted} tokens ({prompt_tokens} in the {prompt_param}, {requested or 0} in the completion). "
            f"Please reduce the length of the {prompt_param} or completion.",
            param=prompt_param if prompt_tokens >= context_length else max_param,
        )
    return requested if requested is not None else context_length - prompt_tokens


class SamplingRequest(Protocol):
    """The sampling fields chat and legacy completions requests share."""

    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def presence_penalty(self) -> float | None: ...
    @property
    def frequency_penalty(self) -> float | None: ...
    @property
    def logit_bias(self) -> Mapping[str, float] | None: ...


def sampling_params(
    request: SamplingRequest, config: ModelConfig, vocab_size: int, max_tokens: int, **more: Any
) -> SamplingParams:
    """A request's sampling; the model's own defaults where the request sets no temperature or top_p."""
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=config.temperature if request.temperature is None else request.temperature,
        top_p=config.top_p if request.top_p is None else request.top_p,
        seed=request.seed,
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        logit_bias=parse_logit_bias(request.logit_bias, vocab_size),
        **more,
    )


def parse_logit_bias(raw: Mapping[str, float] | None, vocab_size: int) -> dict[int, float]:
    if not raw:
        return {}
    bias: dict[int, float] = {}
    for key, value in raw.items():
        try:
            token = int(key)
        except ValueError:
            token = -1
        if not 0 <= token < vocab_size:
            raise InvalidRequest(
                f"Invalid key in 'logit_bias': {key!r} is not a token id of this model (0..{vocab_size - 1}).",
                param="logit_bias",
            )
        bias[token] = float(value)
    return bias
