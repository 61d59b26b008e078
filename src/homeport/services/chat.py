"""Chat completions: request → prompt ids → choices, whole or as OpenAI-ordered chunks."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

from ..backends.base import ChatEngine, Message, SamplingParams, Token
from ..errors import InvalidRequest, UnsupportedParameter
from ..ids import new_id
from ..protocol.chat import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChoiceLogprobs,
    ContentPart,
    Delta,
    ResponseMessage,
    TokenLogprob,
    TopLogprob,
)
from ..protocol.common import Usage
from ..settings import ModelConfig
from .generation import Done, Piece, generate_text, parse_logit_bias, resolve_max_tokens, stop_list
from .models import ModelRegistry

__all__ = ["ChatService"]

# Spec fields that local models cannot honour: a non-null value is a 400 naming the field.
_UNSUPPORTED = ("audio", "prediction", "web_search_options", "functions", "function_call", "moderation")


@dataclass
class _Plan:
    """A validated request, ready to run."""

    request: ChatCompletionRequest
    config: ModelConfig
    engine: ChatEngine
    prompt: list[int]
    sampling: SamplingParams
    stops: list[str]
    n: int

    def sampling_for(self, choice: int) -> SamplingParams:
        seed = self.sampling.seed
        if seed is None or choice == 0:
            return self.sampling
        return SamplingParams(**{**self.sampling.__dict__, "seed": seed + choice})


class ChatService:
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def plan(self, request: ChatCompletionRequest) -> _Plan:
        _reject_unsupported(request)
        config, engine = self._registry.chat(request.model)
        prompt = engine.apply_chat_template(_messages(request))
        max_tokens = request.max_completion_tokens or request.max_tokens
        param = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
        sampling = SamplingParams(
            max_tokens=resolve_max_tokens(
                max_tokens, len(prompt), engine.context_length, prompt_param="messages", max_param=param
            ),
            temperature=config.temperature if request.temperature is None else request.temperature,
            top_p=config.top_p if request.top_p is None else request.top_p,
            seed=request.seed,
            presence_penalty=request.presence_penalty or 0.0,
            frequency_penalty=request.frequency_penalty or 0.0,
            logit_bias=parse_logit_bias(request.logit_bias, engine.vocab_size),
            top_logprobs=(request.top_logprobs or 0) if request.logprobs else None,
        )
        return _Plan(request, config, engine, prompt, sampling, stop_list(request.stop), request.n or 1)

    async def create(self, plan: _Plan) -> ChatCompletion:
        choices, completion_tokens = [], 0
        for index in range(plan.n):
            text, tokens, finish = "", [], "stop"
            async for item in generate_text(plan.engine, plan.prompt, plan.sampling_for(index), plan.stops):
                if isinstance(item, Piece):
                    text += item.text
                    tokens += item.tokens
                else:
                    tokens += item.tokens
                    finish, completion_tokens = item.finish_reason, completion_tokens + item.completion_tokens
            logprobs = _logprobs(tokens) if plan.sampling.top_logprobs is not None else None
            message = ResponseMessage(content=text)
            choices.append(ChatChoice(index=index, message=message, logprobs=logprobs, finish_reason=finish))  # type: ignore[arg-type]
        return ChatCompletion(
            id=new_id("chatcmpl-"),
            created=int(time.time()),
            model=plan.request.model,
            choices=choices,
            usage=Usage.of(len(plan.prompt), completion_tokens),
            system_fingerprint=plan.engine.fingerprint,
            metadata=plan.request.metadata,
        )

    async def stream(self, plan: _Plan) -> AsyncIterator[ChatCompletionChunk]:
        """Per choice: a role chunk, content chunks, a finish chunk; then the usage chunk if asked.

        The engine is started before the first chunk is yielded, so a full queue surfaces as
        an HTTP error rather than inside a 200 stream.
        """
        want_usage = bool(plan.request.stream_options and plan.request.stream_options.include_usage)
        chunk = partial(
            ChatCompletionChunk,
            id=new_id("chatcmpl-"),
            created=int(time.time()),
            model=plan.request.model,
            system_fingerprint=plan.engine.fingerprint,
        )
        with_logprobs = plan.sampling.top_logprobs is not None
        completion_tokens = 0
        for index in range(plan.n):
            items = generate_text(plan.engine, plan.prompt, plan.sampling_for(index), plan.stops)
            try:
                first = await anext(items)
                yield chunk(choices=[_chunk_choice(index, Delta(role="assistant", content=""), with_logprobs)])
                item: Piece | Done = first
                while True:
                    if isinstance(item, Done):
                        completion_tokens += item.completion_tokens
                        choice = ChatChunkChoice(index=index, delta=Delta(), finish_reason=item.finish_reason)  # type: ignore[arg-type]
                        if with_logprobs and item.tokens:
                            choice.logprobs = _logprobs(item.tokens)
                        yield chunk(choices=[choice])
                        break
                    delta = Delta(content=item.text)
                    choice = ChatChunkChoice(index=index, delta=delta)
                    if with_logprobs:
                        choice.logprobs = _logprobs(item.tokens)
                    yield chunk(choices=[choice])
                    item = await anext(items)
            finally:
                await items.aclose()
        if want_usage:
            yield chunk(choices=[], usage=Usage.of(len(plan.prompt), completion_tokens))


def _chunk_choice(index: int, delta: Delta, with_logprobs: bool) -> ChatChunkChoice:
    logprobs = ChoiceLogprobs(content=[], refusal=None) if with_logprobs else None
    return ChatChunkChoice(index=index, delta=delta, logprobs=logprobs)


def _logprobs(tokens: list[Token]) -> ChoiceLogprobs:
    content = []
    for t in tokens:
        top = [TopLogprob(token=_text(p), logprob=lp, bytes=list(p)) for p, lp in (t.top or [])]
        content.append(
            TokenLogprob(token=_text(t.piece), logprob=t.logprob or 0.0, bytes=list(t.piece), top_logprobs=top)
        )
    return ChoiceLogprobs(content=content, refusal=None)


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", "replace")


def _reject_unsupported(request: ChatCompletionRequest) -> None:
    for name in _UNSUPPORTED:
        if getattr(request, name) is not None:
            raise UnsupportedParameter(name)
    if request.modalities not in (None, ["text"]):
        raise UnsupportedParameter("modalities", "Only text output is available.")
    if request.tools:
        raise UnsupportedParameter("tools", "Function calling is not available yet.")
    if request.response_format and request.response_format.get("type") != "text":
        raise UnsupportedParameter("response_format", "Only {'type': 'text'} is available yet.")
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs")
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )


def _messages(request: ChatCompletionRequest) -> list[Message]:
    out = []
    for i, m in enumerate(request.messages):
        if m.role in ("tool", "function"):
            raise InvalidRequest(f"Messages with role '{m.role}' need tools, which are not available yet.",
                                 param=f"messages.[{i}].role")  # fmt: skip
        if m.role == "assistant" and (m.tool_calls or m.function_call):
            raise UnsupportedParameter(f"messages.[{i}].tool_calls", "Function calling is not available yet.")
        role = "system" if m.role == "developer" else m.role
        out.append(Message(role, _text_content(m.content, i)))
    return out


def _text_content(content: str | list[ContentPart] | None, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content):
        if part.type != "text":
            raise InvalidRequest(
                f"Content parts of type '{part.type}' are not supported by this model; send text.",
                param=f"messages.[{i}].content.[{j}].type",
            )
        parts.append(part.text)
    return "\n".join(parts)
