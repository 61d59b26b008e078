"""An upstream deployment that speaks Anthropic's Messages API (`protocol: anthropic`): a chat
completion request is sent as a Messages request, and the message — or its event stream — comes
back as a chat completion or its chunks. The reverse of services/messages/translate.py, which
serves Anthropic's API on Homeport's own engines.

What has no Messages equivalent is a 400 naming the parameter before anything is sent
(`n` > 1, `logprobs`, `response_format` other than text, audio); everything else maps:
system/developer messages to `system`, image parts to image blocks, tool calls to `tool_use`
blocks and tool messages to `tool_result` blocks, `stop` to `stop_sequences`, `tool_choice` and
`parallel_tool_calls` to Anthropic's tool choice. Usage is Anthropic's: input tokens (cached
reads and writes included) as prompt tokens, cached reads as `cached_tokens`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import InvalidRequest, UnsupportedParameter
from ..ids import new_id

__all__ = ["ANTHROPIC_VERSION", "chunks", "to_completion", "to_messages"]

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Messages requires max_tokens; chat completions does not
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
          "tool_use": "tool_calls", "refusal": "content_filter"}  # fmt: skip


def to_messages(body: dict[str, Any]) -> dict[str, Any]:
    """The Messages request for a chat completion request (already validated as one)."""
    unsent = {"n": (body.get("n") or 1) > 1, "logprobs": bool(body.get("logprobs")), "audio": bool(body.get("audio")),
              "response_format": (body.get("response_format") or {}).get("type", "text") != "text"}  # fmt: skip
    for name, bad in unsent.items():
        if bad:
            raise UnsupportedParameter(name, f"`{name}` cannot be sent to this model's Anthropic upstream.")
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for i, m in enumerate(body.get("messages") or []):
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_plain(m.get("content"), f"messages[{i}].content"))
        elif role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.get("tool_call_id") or "",
                     "content": _plain(m.get("content"), f"messages[{i}].content")}  # fmt: skip
            _append(messages, "user", [block])
        elif role == "assistant":
            blocks = _blocks(m.get("content"), i)
            for call in m.get("tool_calls") or []:
                blocks.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"],
                               "input": _arguments(call["function"].get("arguments"), i)})  # fmt: skip
            _append(messages, "assistant", blocks)
        else:
            _append(messages, "user", _blocks(m.get("content"), i))
    out: dict[str, Any] = {"messages": messages,
                           "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")
                           or DEFAULT_MAX_TOKENS}  # fmt: skip
    if system:
        out["system"] = "\n\n".join(system)
    if body.get("temperature") is not None:
        out["temperature"] = min(1.0, float(body["temperature"]))  # Anthropic's range is 0-1
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools:
        out["tools"] = [{"name": t["function"]["name"], "description": t["function"].get("description") or "",
                         "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}}}
                        for t in tools]  # fmt: skip
        choice = _tool_choice(body.get("tool_choice"))
        if body.get("parallel_tool_calls") is False:
            choice["disable_parallel_tool_use"] = True
        out["tool_choice"] = choice
    if body.get("stream"):
        out["stream"] = True
    return out


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Messages alternate user/assistant: a turn of the same role as the last joins it."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"] += blocks
    else:
        messages.append({"role": role, "content": blocks})


def _plain(content: Any, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(p.get("text") or "" for p in content)
    raise InvalidRequest("Only text can go here for an Anthropic upstream.", param=param)


def _blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "image_url":
            blocks.append({"type": "image", "source": _image(part["image_url"]["url"])})
        elif kind == "refusal":
            blocks.append({"type": "text", "text": part.get("refusal") or ""})
        else:
            raise InvalidRequest(f"Content parts of type '{kind}' cannot be sent to an Anthropic upstream.",
                                 param=f"messages[{i}].content[{j}].type")  # fmt: skip
    return blocks


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "base64", "media_type": media, "data": data}
    return {"type": "url", "url": url}


def _arguments(raw: Any, i: int) -> Any:
    try:
        return json.loads(raw or "{}")
    except ValueError:
        raise InvalidRequest("Tool call arguments must be JSON for an Anthropic upstream.",
                             param=f"messages[{i}].tool_calls") from None  # fmt: skip


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, dict):
        return {"type": "tool", "name": choice["function"]["name"]}
    return {"type": {"required": "any", "none": "none"}.get(choice or "auto", "auto")}


def _usage(usage: dict[str, Any], output: int | None = None) -> dict[str, Any]:
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cached + int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0) if output is None else output
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}  # fmt: skip


def to_completion(message: dict[str, Any]) -> dict[str, Any]:
    """A chat completion from an Anthropic message."""
    text = "".join(b.get("text") or "" for b in message.get("content") or [] if b.get("type") == "text")
    calls = [{"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(b["input"])}}
             for b in message.get("content") or [] if b.get("type") == "tool_use"]  # fmt: skip
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        reply["tool_calls"] = calls
    return {"id": "chatcmpl-" + str(message.get("id") or new_id("")), "object": "chat.completion",
            "created": int(time.time()), "model": message.get("model") or "",
            "choices": [{"index": 0, "message": reply, "logprobs": None,
                         "finish_reason": FINISH.get(message.get("stop_reason") or "", "stop")}],
            "usage": _usage(message.get("usage") or {})}  # fmt: skip


async def chunks(events: AsyncIterator[tuple[str, dict[str, Any]]]) -> AsyncIterator[dict[str, Any]]:
    """Chat completion chunks from Anthropic's stream events (name, data), the last carrying usage."""
    head: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    calls: dict[int, int] = {}  # content block index -> tool call index

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return head | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    async for name, data in events:
        if name == "message_start":
            message = data.get("message") or {}
            head = {"id": "chatcmpl-" + str(message.get("id") or new_id("")), "object": "chat.completion.chunk",
                    "created": int(time.time()), "model": message.get("model") or ""}  # fmt: skip
            usage = dict(message.get("usage") or {})
            yield chunk({"role": "assistant", "content": ""})
        elif name == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                calls[int(data.get("index", 0))] = len(calls)
                yield chunk({"tool_calls": [{"index": len(calls) - 1, "id": block.get("id"), "type": "function",
                                             "function": {"name": block.get("name"), "arguments": ""}}]})  # fmt: skip
            elif block.get("type") == "text" and block.get("text"):
                yield chunk({"content": block["text"]})
        elif name == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                yield chunk({"content": delta.get("text") or ""})
            elif delta.get("type") == "input_json_delta" and int(data.get("index", 0)) in calls:
                yield chunk({"tool_calls": [{"index": calls[int(data.get("index", 0))],
                                             "function": {"arguments": delta.get("partial_json") or ""}}]})  # fmt: skip
        elif name == "message_delta":
            usage |= {k: v for k, v in (data.get("usage") or {}).items() if v is not None}
            reason = (data.get("delta") or {}).get("stop_reason")
            yield chunk({}, FINISH.get(reason or "", "stop"))
        elif name == "message_stop":
            yield head | {"choices": [], "usage": _usage(usage)}
            return
