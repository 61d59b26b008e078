"""OpenAI chat messages → the plain role/text turns a chat template renders.

Tool calls in assistant turns and tool results are written in the same tagged format the
model is asked to produce (`<tool_call>…</tool_call>`, `<tool_response>…</tool_response>`),
so every template, with or without native tool support, shows the model the whole exchange.
"""

from __future__ import annotations

import json

from ...backends.base import Message
from ...backends.constraints import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from ...errors import InvalidRequest, UnsupportedParameter
from ...protocol.chat import AssistantMessage, ChatCompletionRequest, ContentPart, ToolMessage

__all__ = ["to_turns"]


def to_turns(request: ChatCompletionRequest, tools_prompt: str | None) -> list[Message]:
    turns: list[Message] = []
    call_names: dict[str, str] = {}  # tool_call_id → function name, from earlier assistant turns
    for i, m in enumerate(request.messages):
        if isinstance(m, AssistantMessage):
            turns.append(Message("assistant", _assistant_text(m, i, call_names)))
        elif isinstance(m, ToolMessage):
            turns.append(Message("user", _tool_result(m, i, call_names)))
        elif m.role == "function":
            raise UnsupportedParameter(f"messages.[{i}].role", "Use tools and role 'tool' instead of functions.")
        else:
            role = "system" if m.role == "developer" else m.role
            turns.append(Message(role, _text(m.content, i)))
    if tools_prompt:
        if turns and turns[0].role == "system":
            turns[0] = Message("system", f"{turns[0].content}\n\n{tools_prompt}")
        else:
            turns.insert(0, Message("system", tools_prompt))
    return turns


def _assistant_text(m: AssistantMessage, i: int, call_names: dict[str, str]) -> str:
    if m.function_call is not None:
        raise UnsupportedParameter(f"messages.[{i}].function_call", "Use tool_calls instead.")
    text = _text(m.content, i)
    for call in m.tool_calls or []:
        call_names[call.id] = call.function.name
        body = f'{{"name": {json.dumps(call.function.name)}, "arguments": {call.function.arguments or "{}"}}}'
        text += f"{TOOL_CALL_OPEN}\n{body}\n{TOOL_CALL_CLOSE}"
    return text


def _tool_result(m: ToolMessage, i: int, call_names: dict[str, str]) -> str:
    name = call_names.get(m.tool_call_id)
    if name is None:
        raise InvalidRequest(
            f"Invalid parameter: messages with role 'tool' must be a response to a preceding message with "
            f"'tool_calls'; no earlier tool call has the id '{m.tool_call_id}'.",
            param=f"messages.[{i}].tool_call_id",
        )
    result = json.dumps({"name": name, "content": _text(m.content, i)})
    return f"<tool_response>\n{result}\n</tool_response>"


def _text(content: str | list[ContentPart] | None, i: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for j, part in enumerate(content):
        if part.type == "refusal":
            continue
        if part.type != "text":
            raise InvalidRequest(
                f"Content parts of type '{part.type}' are not supported by this model (a local model reads text "
                "only; a model served by an upstream deployment that accepts them receives them); send text.",
                param=f"messages.[{i}].content.[{j}].type",
            )
        parts.append(part.text)  # type: ignore[union-attr]
    return "\n".join(parts)
