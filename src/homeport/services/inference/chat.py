"""Chat completions: request → prompt ids → choices, whole or as OpenAI-ordered chunks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from functools import partial

from ...backends.base import ChatEngine, SamplingParams, Token, prepared
from ...errors import InvalidRequest, UnsupportedParameter
from ...ids import new_id, sortable_id
from ...protocol.chat import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChoiceLogprobs,
    Delta,
    FunctionCall,
    ResponseMessage,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
)
from ...protocol.common import Usage
from . import generation as gen
from .chat_messages import to_turns
from .generation import Done, Piece, generate_text, generate_whole
from .registry import ModelRegistry
from .stored import Assembler, StoredCompletions
from .structured import Structure, plan_structure
from .toolcalls import ArgsDelta, CallStart, Event, Text, ToolCallParser

__all__ = ["ChatPlan", "ChatService"]

# Spec fields that local models cannot honour: a non-null value is a 400 naming the field.
_UNSUPPORTED = ("audio", "prediction", "web_search_options", "functions", "function_call", "moderation")


@dataclass
class ChatPlan:
    """A validated request, ready to run."""

    request: ChatCompletionRequest
    engine: ChatEngine
    prompt: list[int]
    sampling: SamplingParams
    stops: list[str]
    n: int
    structure: Structure
    project_id: str | None = None
    usage: Usage | None = None
    """Set once the response is complete (for settling rate limits and metering)."""

    @property
    def estimate(self) -> tuple[int, int]:
        """(prompt, output) tokens reserved up front: the prompt, and every choice's max output."""
        return len(self.prompt), self.n * self.sampling.max_tokens

    def sampling_for(self, choice: int) -> SamplingParams:
        seed = self.sampling.seed
        return self.sampling if seed is None or choice == 0 else replace(self.sampling, seed=seed + choice)

    def parser(self) -> ToolCallParser | None:
        return ToolCallParser() if self.structure.calls_possible else None


class ChatService:
    def __init__(self, registry: ModelRegistry, stored: StoredCompletions | None = None) -> None:
        self._registry, self.stored = registry, stored

    async def plan(
        self, request: ChatCompletionRequest, project_id: str | None = None, key_id: str | None = None
    ) -> ChatPlan:
        _reject_unsupported(request)
        config, engine = self._registry.chat(request.model)
        structure = plan_structure(request)
        turns = to_turns(request, structure.prompt)
        prompt = await prepared(partial(engine.apply_chat_template, turns), sum(len(t.content) for t in turns))
        max_tokens = request.max_completion_tokens or request.max_tokens
        param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        max_tokens = gen.resolve_max_tokens(
            max_tokens, len(prompt), engine.context_length, prompt_param="messages", max_param=param
        )
        sampling = gen.sampling_params(
            request, config, engine.vocab_size, max_tokens, constraint=structure.constraint,
            top_logprobs=(request.top_logprobs or 0) if request.logprobs else None,
        )  # fmt: skip
        stops = gen.stop_list(request.stop)
        return ChatPlan(request, engine, prompt, sampling, stops, request.n or 1, structure, project_id)

    async def token_counts(self, model: str, texts: list[str]) -> list[int]:
        """Each text's tokens in the model's tokenizer (no template around it)."""
        _, engine = self._registry.chat(model)
        return await prepared(lambda: [len(engine.tokenize(t, special=False)) for t in texts], sum(map(len, texts)))

    async def create(self, plan: ChatPlan) -> ChatCompletion:
        choices, completion_tokens, cached = [], 0, 0
        for index in range(plan.n):
            whole = await generate_whole(plan.engine, plan.prompt, plan.sampling_for(index), plan.stops)
            text, finish = whole.text, whole.finish_reason
            completion_tokens += whole.completion_tokens
            cached = whole.cached_tokens if index == 0 else cached  # the prompt is counted once
            message = ResponseMessage(content=text)
            parser = plan.parser()
            if parser is not None:
                events = parser.feed(text) + parser.finish()
                content = "".join(e.text for e in events if isinstance(e, Text))
                calls = [_tool_call(c.name, c.arguments) for c in parser.calls]
                message = ResponseMessage(content=content if content or not calls else None, tool_calls=calls or None)
                finish = "tool_calls" if calls and finish == "stop" else finish
            logprobs = _logprobs(whole.tokens) if plan.sampling.top_logprobs is not None else None
            choices.append(ChatChoice(index=index, message=message, logprobs=logprobs, finish_reason=finish))  # type: ignore[arg-type]
        plan.usage = Usage.of(len(plan.prompt), completion_tokens, cached_tokens=cached)
        completion = ChatCompletion(
            id=sortable_id("chatcmpl-"),
            created=int(time.time()),
            model=plan.request.model,
            choices=choices,
            usage=plan.usage,
            system_fingerprint=plan.engine.fingerprint,
            metadata=plan.request.metadata,
        )
        if plan.request.store and self.stored is not None:
            await self.stored.save(plan.project_id, plan.request, json.loads(completion.model_dump_json()))
        return completion

    async def stream(self, plan: ChatPlan) -> AsyncIterator[ChatCompletionChunk]:
        """The chunks (see `_chunks`); a completion with `store: true` is stored once it is whole."""
        if not (plan.request.store and self.stored is not None):
            async for chunk in self._chunks(plan):
                yield chunk
            return
        whole = Assembler()
        async for chunk in self._chunks(plan):
            whole.add(chunk)
            yield chunk
        await self.stored.save(plan.project_id, plan.request, whole.completion(plan.request.metadata))

    async def _chunks(self, plan: ChatPlan) -> AsyncIterator[ChatCompletionChunk]:
        """Per choice: a role chunk, content or tool-call chunks, a finish chunk; then usage if asked.

        The engine is started before the first chunk is yielded, so a full queue or a bad
        grammar surfaces as an HTTP error rather than inside a 200 stream.
        """
        chunk = partial(
            ChatCompletionChunk,
            id=sortable_id("chatcmpl-"),
            created=int(time.time()),
            model=plan.request.model,
            system_fingerprint=plan.engine.fingerprint,
        )
        with_logprobs = plan.sampling.top_logprobs is not None
        completion_tokens = cached = 0
        for index in range(plan.n):
            items = generate_text(plan.engine, plan.prompt, plan.sampling_for(index), plan.stops)
            try:
                item: Piece | Done = await anext(items)
                role = ChatChunkChoice(index=index, delta=Delta(role="assistant", content=""))
                if with_logprobs:
                    role.logprobs = ChoiceLogprobs(content=[], refusal=None)
                yield chunk(choices=[role])
                deltas = _Deltas(plan.parser())
                carry: list[Token] = []  # sampled tokens whose text is not out yet (for logprobs)
                while True:
                    if isinstance(item, Done):
                        completion_tokens += item.completion_tokens
                        cached = item.cached_tokens if index == 0 else cached  # the prompt is counted once
                        for delta in deltas.finish():
                            yield chunk(choices=[ChatChunkChoice(index=index, delta=delta)])
                        reason = "tool_calls" if deltas.called and item.finish_reason == "stop" else item.finish_reason
                        choice = ChatChunkChoice(index=index, delta=Delta(), finish_reason=reason)  # type: ignore[arg-type]
                        if with_logprobs and (carry or item.tokens):
                            choice.logprobs = _logprobs(carry + item.tokens)
                        yield chunk(choices=[choice])
                        break
                    carry += item.tokens
                    for delta in deltas.feed(item.text):
                        choice = ChatChunkChoice(index=index, delta=delta)
                        if with_logprobs:
                            choice.logprobs, carry = _logprobs(carry), []
                        yield chunk(choices=[choice])
                    item = await anext(items)
            finally:
                await items.aclose()
        plan.usage = Usage.of(len(plan.prompt), completion_tokens, cached_tokens=cached)
        if plan.request.stream_options and plan.request.stream_options.include_usage:
            yield chunk(choices=[], usage=plan.usage)


class _Deltas:
    """Text pieces → content deltas, or tool-call deltas when the model calls tools."""

    def __init__(self, parser: ToolCallParser | None) -> None:
        self._parser = parser
        self._ids: dict[int, str] = {}

    @property
    def called(self) -> bool:
        return bool(self._parser and self._parser.calls)

    def feed(self, text: str) -> list[Delta]:
        if self._parser is None:
            return [Delta(content=text)] if text else []
        return [d for e in self._parser.feed(text) if (d := self._delta(e)) is not None]

    def finish(self) -> list[Delta]:
        if self._parser is None:
            return []
        return [d for e in self._parser.finish() if (d := self._delta(e)) is not None]

    def _delta(self, event: Event) -> Delta | None:
        if isinstance(event, Text):
            return Delta(content=event.text) if event.text else None
        if isinstance(event, CallStart):
            self._ids[event.index] = new_id("call_", 24)
            function = {"name": event.name, "arguments": ""}
            call = ToolCallDelta(index=event.index, id=self._ids[event.index], type="function", function=function)
            return Delta(tool_calls=[call])
        if isinstance(event, ArgsDelta):
            return Delta(tool_calls=[ToolCallDelta(index=event.index, function={"arguments": event.text})])
        return None  # CallEnd: the arguments are all out already


def _tool_call(name: str, arguments: str) -> ToolCall:
    return ToolCall(id=new_id("call_", 24), function=FunctionCall(name=name, arguments=arguments))


def _logprobs(tokens: list[Token]) -> ChoiceLogprobs:
    content = []
    for t in tokens:
        top = [TopLogprob(token=_text(p), logprob=lp, bytes=list(p)) for p, lp in (t.top or [])]
        entry = TokenLogprob(token=_text(t.piece), logprob=t.logprob or 0.0, bytes=list(t.piece), top_logprobs=top)
        content.append(entry)
    return ChoiceLogprobs(content=content, refusal=None)


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", "replace")


def _reject_unsupported(request: ChatCompletionRequest) -> None:
    for name in _UNSUPPORTED:
        if getattr(request, name) is not None:
            raise UnsupportedParameter(name)
    if request.modalities not in (None, ["text"]):
        raise UnsupportedParameter("modalities", "Only text output is available.")
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs")
    gen.check_stream_options(request.stream, request.stream_options)
