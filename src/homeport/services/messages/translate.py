"""Anthropic's Messages API ↔ chat completions: a Messages request becomes a chat request (served
by the chat service on the same engines), and the chat answer or its chunks become Anthropic's
message or its event sequence."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ...errors import InvalidRequest, UnsupportedParameter
from ...ids import new_id
from ...protocol.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from ...protocol.messages import CountTokensRequest, MessagesRequest

__all__ = ["to_chat", "to_message", "Events", "STOP_REASONS"]

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def to_chat(req: CountTokensRequest) -> ChatCompletionRequest:
    """The chat completion request that serves `req`; what cannot be served is a 400 naming it."""
    if req.thinking is not None:
        raise UnsupportedParameter("thinking", "Extended thinking is not available on these models.")
    messages: list[dict[str, Any]] = []
    if req.system:
        messages.append({"role": "system", "content": _text(req.system, "system")})
    for i, m in enumerate(req.messages):
        messages += _turn(m.role, m.content, i)
    body: dict[str, Any] = {"model": req.model, "messages": messages}
    if req.tools:
        body["tools"] = [_tool(t, i) for i, t in enumerate(req.tools)]
    if req.tool_choice is not None:
        choice = req.tool_choice
        if choice.type == "tool" and not choice.name:
            raise InvalidRequest("tool_choice.name is required with tool_choice.type 'tool'.", param="tool_choice.name")
        body["tool_choice"] = ({"auto": "auto", "any": "required", "none": "none"}.get(choice.type) or
                               {"type": "function", "function": {"name": choice.name}})  # fmt: skip
        if req.tools and choice.disable_parallel_tool_use is False:
            body["parallel_tool_calls"] = True
    if isinstance(req, MessagesRequest):
        if req.top_k is not None:
            raise UnsupportedParameter("top_k", "Sampling takes temperature and top_p here.")
        body["max_tokens"] = req.max_tokens
        for name in ("temperature", "top_p"):
            if getattr(req, name) is not None:
                body[name] = getattr(req, name)
        if req.stop_sequences:
            if len(req.stop_sequences) > 4:
                raise InvalidRequest("At most 4 stop_sequences are supported.", param="stop_sequences")
            body["stop"] = req.stop_sequences
        if req.metadata and req.metadata.get("user_id"):
            body["user"] = str(req.metadata["user_id"])
        if req.stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
    return ChatCompletionRequest.model_validate(body)


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for j, block in enumerate(content):
        if block.type != "text":
            raise InvalidRequest(f"Blocks of type '{block.type}' are not supported here.", param=f"{param}.{j}.type")
        parts.append(getattr(block, "text", ""))
    return "\n".join(parts)


def _turn(role: str, content: Any, i: int) -> list[dict[str, Any]]:
    """One Anthropic message as chat messages: tool results become `tool` messages of their own."""
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        extra = block.model_extra or {}
        if block.type == "text":
            parts.append({"type": "text", "text": extra.get("text", "")})
        elif block.type == "image" and role == "user":
            source = extra.get("source") or {}
            url = (f"data:{source.get('media_type')};base64,{source.get('data')}" if source.get("type") == "base64"
                   else source.get("url"))  # fmt: skip
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif block.type == "tool_use" and role == "assistant":
            arguments = json.dumps(extra.get("input") or {})
            calls.append({"id": extra.get("id"), "type": "function",
                          "function": {"name": extra.get("name"), "arguments": arguments}})  # fmt: skip
        elif block.type == "tool_result" and role == "user":
            result = extra.get("content")
            text = result if isinstance(result, str) else "\n".join(
                b.get("text", "") for b in result or [] if isinstance(b, dict) and b.get("type") == "text")  # fmt: skip
            if extra.get("is_error"):
                text = f"Error: {text}"
            out.append({"role": "tool", "tool_call_id": extra.get("tool_use_id"), "content": text})
        else:
            raise InvalidRequest(f"Blocks of type '{block.type}' are not supported in {role} messages here.",
                                 param=f"messages.{i}.content.{j}.type")  # fmt: skip
    if parts or calls:
        message: dict[str, Any] = {"role": role, "content": parts or None}
        if calls:
            message["tool_calls"] = calls
        if role == "assistant" and parts and all(p["type"] == "text" for p in parts):
            message["content"] = "".join(p["text"] for p in parts)
        out.append(message)
    return out


def _tool(tool: Any, i: int) -> dict[str, Any]:
    if tool.type not in (None, "custom"):
        raise InvalidRequest(f"Server tools ('{tool.type}') are not available here.", param=f"tools.{i}.type")
    function = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _blocks(content: str | None, tool_calls: list[Any] | None) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
    for call in tool_calls or []:
        blocks.append({"type": "tool_use", "id": _tool_id(call.id), "name": call.function.name,
                       "input": json.loads(call.function.arguments or "{}")})  # fmt: skip
    return blocks


def _tool_id(call_id: str) -> str:
    return call_id if call_id.startswith("toolu_") else "toolu_" + call_id.removeprefix("call_")


def to_message(completion: ChatCompletion, model: str, stops: list[str] | None) -> dict[str, Any]:
    """Anthropic's message object for a chat completion."""
    choice = completion.choices[0]
    text = choice.message.content
    reason = STOP_REASONS.get(choice.finish_reason, "end_turn")
    return {
        "id": "msg_" + completion.id.removeprefix("chatcmpl-"), "type": "message", "role": "assistant",
        "model": model, "content": _blocks(text, choice.message.tool_calls), "stop_reason": reason,
        "stop_sequence": None,
        "usage": {"input_tokens": completion.usage.prompt_tokens, "output_tokens": completion.usage.completion_tokens,
                  "cache_read_input_tokens": _cached(completion.usage), "cache_creation_input_tokens": 0},
    }  # fmt: skip


def _cached(usage: Any) -> int:
    details = getattr(usage, "prompt_tokens_details", None)
    return int(getattr(details, "cached_tokens", 0) or 0)


class Event:
    """One named server-sent event of Anthropic's stream (api/sse.py writes `event:` from `sse_event`)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data, self.sse_event = data, data["type"]

    def model_dump_json(self) -> str:
        return json.dumps(self.data)


class Events:
    """Chat chunks → message_start, content_block_start/delta/stop per block, message_delta, message_stop."""

    def __init__(self, model: str, input_tokens: int) -> None:
        self._model, self._input = model, input_tokens
        self._index = -1
        self._open: str | None = None  # the open block's kind: text | tool
        self._tools: dict[int, int] = {}  # chat tool-call index → block index

    async def of(self, chunks: AsyncIterator[ChatCompletionChunk]) -> AsyncIterator[Event]:
        started, reason, usage = False, "end_turn", None
        async for chunk in chunks:
            if not started:
                started = True
                yield Event({"type": "message_start", "message": {
                    "id": "msg_" + chunk.id.removeprefix("chatcmpl-"), "type": "message", "role": "assistant",
                    "content": [], "model": self._model, "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": self._input, "output_tokens": 0}}})  # fmt: skip
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices[:1]:
                for event in self._delta(choice.delta):
                    yield event
                if choice.finish_reason:
                    reason = STOP_REASONS.get(choice.finish_reason, "end_turn")
        for event in self._close():
            yield event
        output = usage.completion_tokens if usage is not None else 0
        yield Event({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None},
                     "usage": {"output_tokens": output}})  # fmt: skip
        yield Event({"type": "message_stop"})

    def _delta(self, delta: Any) -> list[Event]:
        events: list[Event] = []
        if delta.content:
            if self._open != "text":
                events += self._close() + self._start({"type": "text", "text": ""}, "text")
            events.append(Event({"type": "content_block_delta", "index": self._index,
                                 "delta": {"type": "text_delta", "text": delta.content}}))  # fmt: skip
        for call in delta.tool_calls or []:
            if call.index not in self._tools:
                events += self._close()
                block = {"type": "tool_use", "id": _tool_id(call.id or new_id("call_", 24)),
                         "name": (call.function or {}).get("name", ""), "input": {}}  # fmt: skip
                events += self._start(block, "tool")
                self._tools[call.index] = self._index
            if (arguments := (call.function or {}).get("arguments")):
                events.append(Event({"type": "content_block_delta", "index": self._tools[call.index],
                                     "delta": {"type": "input_json_delta", "partial_json": arguments}}))  # fmt: skip
        return events

    def _start(self, block: dict[str, Any], kind: str) -> list[Event]:
        self._index += 1
        self._open = kind
        return [Event({"type": "content_block_start", "index": self._index, "content_block": block})]

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [Event({"type": "content_block_stop", "index": self._index})]
