"""Items, the Responses API's unit of conversation: client input normalised into stored items
(each with its id), and items turned into chat messages for the model."""

from __future__ import annotations

import base64
import json
from typing import Any

from ...errors import InvalidRequest, UnsupportedParameter
from ...ids import new_id
from ...protocol.responses import (
    CompactionItem,
    FileSearchCallItem,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputItem,
    InputText,
    ItemReference,
    MessageItem,
)

__all__ = ["Item", "normalise", "sealed", "summary", "to_messages", "user_text"]

Item = dict[str, Any]
"""An item as the API shows it (input_items, conversation items, a response's output)."""


def normalise(given: str | list[InputItem] | None, known: dict[str, Item], param: str = "input") -> list[Item]:
    """Client input as stored items. References resolve against `known` (the context so far, by
    id); a function_call_output must answer a call made in that context or in this input."""
    if given is None:
        return []
    if isinstance(given, str):
        return [_message("user", [{"type": "input_text", "text": given}])]
    items: list[Item] = []
    calls = {i["call_id"] for i in known.values() if i["type"] == "function_call"}
    for n, item in enumerate(given):
        where = f"{param}.[{n}]"
        if isinstance(item, ItemReference):
            if item.id not in known:
                raise InvalidRequest(f"No item with id '{item.id}' in this response's context.", param=f"{where}.id")
            items.append(known[item.id])
        elif isinstance(item, MessageItem):
            items.append(_message(item.role, _parts(item, where), item.id))
        elif isinstance(item, FunctionCallItem):
            calls.add(item.call_id)
            items.append({"type": "function_call", "id": item.id or new_id("fc_", 24), "call_id": item.call_id,
                          "name": item.name, "arguments": item.arguments, "status": "completed"})  # fmt: skip
        elif isinstance(item, FunctionCallOutputItem):
            if item.call_id not in calls:
                raise InvalidRequest(f"No tool call found for function call output with call_id {item.call_id}.",
                                     param=f"{where}.call_id")  # fmt: skip
            output = item.output if isinstance(item.output, str) else "".join(p.text for p in item.output)
            items.append({"type": "function_call_output", "id": item.id or new_id("fco_", 24),
                          "call_id": item.call_id, "output": output, "status": "completed"})  # fmt: skip
        elif isinstance(item, FileSearchCallItem):
            if item.id in known:
                items.append(known[item.id])
        elif isinstance(item, CompactionItem):
            summary(item.encrypted_content, f"{where}.encrypted_content")  # one of ours, or refused now
            items.append({"type": "compaction", "id": item.id or new_id("cmp_", 24),
                          "encrypted_content": item.encrypted_content})  # fmt: skip
        else:
            raise UnsupportedParameter(f"{where}.type", f"Items of type '{item.type}' are not supported.")
    return items


def _message(role: str, content: list[dict[str, Any]], item_id: str | None = None) -> Item:
    return {"type": "message", "id": item_id or new_id("msg_", 24), "role": role, "content": content,
            "status": "completed"}  # fmt: skip


def _parts(item: MessageItem, where: str) -> list[dict[str, Any]]:
    kind = "output_text" if item.role == "assistant" else "input_text"
    if isinstance(item.content, str):
        return [_text_part(kind, item.content)]
    parts = []
    for n, part in enumerate(item.content):
        if not isinstance(part, InputText):
            raise UnsupportedParameter(f"{where}.content.[{n}].type", "The local models read text only.")
        parts.append(_text_part(kind, part.text))
    return parts


def _text_part(kind: str, text: str) -> dict[str, Any]:
    return {"type": kind, "text": text} | ({"annotations": [], "logprobs": []} if kind == "output_text" else {})


def sealed(text: str) -> str:
    """A compaction summary as `encrypted_content`: opaque to clients, readable by Homeport."""
    return base64.b64encode(json.dumps({"homeport_summary": text}).encode()).decode()


def summary(content: str, param: str) -> str:
    try:
        return str(json.loads(base64.b64decode(content, validate=True))["homeport_summary"])
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("This compaction item was not made by this server.", param=param) from None


def user_text(items: list[Item]) -> str:
    """The text of the latest user message (what file search looks for)."""
    for item in reversed(items):
        if item["type"] == "message" and item["role"] == "user":
            return "".join(p.get("text", "") for p in item["content"])
    return ""


def to_messages(items: list[Item]) -> list[dict[str, Any]]:
    """Items as chat messages: consecutive function calls become one assistant turn's tool calls."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            text = "".join(p.get("text", "") for p in item["content"])
            messages.append({"role": item["role"], "content": text})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}  # fmt: skip
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls") and not last["content"]:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
        elif kind == "compaction":
            text = summary(item["encrypted_content"], "input")
            messages.append({"role": "user", "content": f"(A summary of our conversation so far: {text})"})
    return messages
