"""Legacy text completions: one or more prompts × n choices, echo, logprobs, streaming."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from functools import partial

from ...backends.base import ChatEngine, SamplingParams, Token, prepared
from ...errors import InvalidRequest, UnsupportedParameter
from ...ids import new_id
from ...protocol.common import Usage
from ...protocol.completions import Completion, CompletionChoice, CompletionLogprobs, CompletionRequest
from .generation import (
    Piece,
    check_stream_options,
    generate_text,
    generate_whole,
    resolve_max_tokens,
    sampling_params,
    stop_list,
)
from .registry import ModelRegistry

__all__ = ["CompletionService"]

_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint


@dataclass
class _Prompt:
    ids: list[int]
    text: str
    sampling: SamplingParams


@dataclass
class _Plan:
    request: CompletionRequest
    engine: ChatEngine
    prompts: list[_Prompt]
    stops: list[str]
    n: int
    usage: Usage | None = None
    """Set once the response is complete (for settling rate limits and metering)."""

    @property
    def estimate(self) -> tuple[int, int]:
        """(prompt, output) tokens reserved up front."""
        return self.prompt_tokens, sum(self.n * p.sampling.max_tokens for p in self.prompts)

    def jobs(self) -> list[tuple[int, _Prompt, SamplingParams]]:
        """(choice index, prompt, sampling) in OpenAI's order: prompt-major, then n."""
        out = []
        for p, prompt in enumerate(self.prompts):
            for i in range(self.n):
                seed = prompt.sampling.seed
                sampling = prompt.sampling if seed is None or i == 0 else replace(prompt.sampling, seed=seed + i)
                out.append((p * self.n + i, prompt, sampling))
        return out

    @property
    def prompt_tokens(self) -> int:
        return sum(len(p.ids) for p in self.prompts)


class CompletionService:
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    async def plan(
        self, request: CompletionRequest, project_id: str | None = None, key_id: str | None = None
    ) -> _Plan:
        if request.suffix:
            raise UnsupportedParameter("suffix", "The local models have no fill-in-the-middle mode.")
        if request.echo and request.logprobs is not None:
            raise InvalidRequest("Setting 'echo' and 'logprobs' at the same time is not supported.", param="echo")
        n = request.n or 1
        if request.best_of not in (None, n):
            raise UnsupportedParameter("best_of", "Only best_of equal to n (the default) is available.")
        check_stream_options(request.stream, request.stream_options)
        config, engine = self._registry.chat(request.model, "v1/completions")
        requested = _DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
        base = sampling_params(request, config, engine.vocab_size, requested, top_logprobs=request.logprobs)
        fit = partial(resolve_max_tokens, requested, context_length=engine.context_length, prompt_param="prompt",
                      max_param="max_tokens")  # fmt: skip
        raw = _listed(request.prompt)
        chars = sum(len(p) for p in raw)
        prompts = [
            _Prompt(ids, text, replace(base, max_tokens=max_tokens))
            for ids, text, max_tokens in await prepared(partial(_prompts, raw, engine, fit), chars)
        ]
        return _Plan(request, engine, prompts, stop_list(request.stop), n)

    async def create(self, plan: _Plan) -> Completion:
        choices, completion_tokens = [], 0
        cached: dict[str, int] = {}
        for index, prompt, sampling in plan.jobs():
            whole = await generate_whole(plan.engine, prompt.ids, sampling, plan.stops)
            completion_tokens += whole.completion_tokens
            cached.setdefault(prompt.text, whole.cached_tokens)  # each prompt is counted once
            prefix = prompt.text if plan.request.echo else ""
            logprobs = _logprobs(whole.tokens, len(prefix)) if sampling.top_logprobs is not None else None
            choices.append(
                CompletionChoice(
                    index=index, text=prefix + whole.text, logprobs=logprobs, finish_reason=whole.finish_reason
                )
            )  # type: ignore[arg-type]
        plan.usage = Usage.of(plan.prompt_tokens, completion_tokens, cached_tokens=sum(cached.values()))
        return Completion(
            id=new_id("cmpl-"),
            created=int(time.time()),
            model=plan.request.model,
            choices=choices,
            usage=plan.usage,
            system_fingerprint=plan.engine.fingerprint,
        )

    async def stream(self, plan: _Plan) -> AsyncIterator[Completion]:
        chunk = partial(
            Completion,
            id=new_id("cmpl-"),
            created=int(time.time()),
            model=plan.request.model,
            system_fingerprint=plan.engine.fingerprint,
        )
        completion_tokens = 0
        cached: dict[str, int] = {}
        for index, prompt, sampling in plan.jobs():
            offset = 0
            if plan.request.echo:
                yield chunk(choices=[CompletionChoice(index=index, text=prompt.text, finish_reason=None)])
                offset = len(prompt.text)
            async for item in generate_text(plan.engine, prompt.ids, sampling, plan.stops):
                logprobs = _logprobs(item.tokens, offset) if sampling.top_logprobs is not None else None
                if isinstance(item, Piece):
                    choice = CompletionChoice(index=index, text=item.text, logprobs=logprobs, finish_reason=None)
                    offset += len(item.text)
                else:
                    completion_tokens += item.completion_tokens
                    cached.setdefault(prompt.text, item.cached_tokens)  # each prompt is counted once
                    choice = CompletionChoice(index=index, text="", logprobs=logprobs, finish_reason=item.finish_reason)  # type: ignore[arg-type]
                yield chunk(choices=[choice])
        plan.usage = Usage.of(plan.prompt_tokens, completion_tokens, cached_tokens=sum(cached.values()))
        if plan.request.stream_options and plan.request.stream_options.include_usage:
            yield chunk(choices=[], usage=plan.usage)


def _listed(prompt: object) -> list[str | list[int]]:
    """The request's prompts: one string, one list of token ids, or a list of either."""
    if prompt is None or isinstance(prompt, str):
        return [prompt or ""]
    if prompt and isinstance(prompt[0], int):  # type: ignore[index]
        return [prompt]  # type: ignore[list-item]
    return list(prompt)  # type: ignore[call-overload]


def _prompts(
    prompts: list[str | list[int]], engine: ChatEngine, fit: Callable[[int], int]
) -> list[tuple[list[int], str, int]]:
    """(ids, text, max_tokens) of each prompt; `fit(prompt_tokens)` is its max_tokens, or raises
    when it does not fit the context: checked as each is read, before the next is tokenized."""
    out = []
    for i, p in enumerate(prompts):
        param = "prompt" if len(prompts) == 1 else f"prompt.[{i}]"
        if isinstance(p, str):
            ids = engine.tokenize(p, special=True)
        else:
            if any(not 0 <= t < engine.vocab_size for t in p):
                raise InvalidRequest(f"Token ids must be in 0..{engine.vocab_size - 1}.", param=param)
            ids = list(p)
        if not ids:
            raise InvalidRequest("The prompt is empty.", param=param)
        max_tokens = fit(len(ids))
        text = p if isinstance(p, str) else b"".join(engine.token_piece(t) for t in ids).decode("utf-8", "replace")
        out.append((ids, text, max_tokens))
    return out


def _logprobs(tokens: list[Token], offset: int) -> CompletionLogprobs:
    strings = [t.piece.decode("utf-8", "replace") for t in tokens]
    offsets = []
    for s in strings:
        offsets.append(offset)
        offset += len(s)
    return CompletionLogprobs(
        tokens=strings,
        token_logprobs=[t.logprob for t in tokens],
        top_logprobs=[{p.decode("utf-8", "replace"): lp for p, lp in (t.top or [])} for t in tokens],
        text_offset=offsets,
    )
