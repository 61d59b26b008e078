"""Reading tool calls out of generated text, incrementally, for whole and streamed answers.

The model writes calls as `<tool_call>{"name": N, "arguments": A}</tool_call>` (the format its
prompt shows and, when constrained, the grammar enforces). Text outside those blocks is the
message content. Arguments are released as they are generated, so a streaming client sees
the name first and then the arguments in fragments, as from api.openai.com.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ...backends.constraints import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

__all__ = ["ToolCallParser", "Text", "CallStart", "ArgsDelta", "CallEnd"]

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"([^"\\]+)"\s*,\s*"arguments"\s*:\s*(?=\S)')
_TAIL = len(TOOL_CALL_CLOSE) + 12  # held back: it may still turn out to be "} </tool_call>" and spacing


@dataclass
class Text:
    text: str


@dataclass
class CallStart:
    index: int
    name: str


@dataclass
class ArgsDelta:
    index: int
    text: str


@dataclass
class CallEnd:
    index: int
    name: str
    arguments: str


Event = Text | CallStart | ArgsDelta | CallEnd


class ToolCallParser:
    def __init__(self) -> None:
        self._buffer = ""  # text not yet released
        self._in_call = False
        self._name: str | None = None
        self._args_sent = 0  # characters of the current call's arguments already released
        self.calls: list[CallEnd] = []

    def feed(self, text: str) -> list[Event]:
        self._buffer += text
        events: list[Event] = []
        while True:
            progressed = self._step_call(events) if self._in_call else self._step_text(events)
            if not progressed:
                return events

    def finish(self) -> list[Event]:
        """End of output: release what is left (an unfinished call is dropped)."""
        events: list[Event] = []
        if not self._in_call and self._buffer and not (self.calls and not self._buffer.strip()):
            events.append(Text(self._buffer))
        self._buffer = ""
        return events

    def _step_text(self, events: list[Event]) -> bool:
        at = self._buffer.find(TOOL_CALL_OPEN)
        if at >= 0:
            before = self._buffer[:at]
            if before.strip():  # whitespace next to a call is not content
                events.append(Text(before))
            self._buffer = self._buffer[at + len(TOOL_CALL_OPEN) :]
            self._in_call, self._name, self._args_sent = True, None, 0
            return True
        keep = _partial_suffix(self._buffer, TOOL_CALL_OPEN)
        release = self._buffer[: len(self._buffer) - keep]
        # Whitespace waits for what follows it: before or between calls it is not content.
        if release.strip():
            events.append(Text(release))
            self._buffer = self._buffer[len(release) :]
        return False

    def _step_call(self, events: list[Event]) -> bool:
        index = len(self.calls)
        if self._name is None:
            head = _HEAD.match(self._buffer)
            if head is None:
                return False
            self._name = head.group(1)
            self._buffer = self._buffer[head.end() :]
            events.append(CallStart(index, self._name))
        end = self._buffer.find(TOOL_CALL_CLOSE)
        if end >= 0:
            args = _strip_closing_brace(self._buffer[:end])
            if len(args) > self._args_sent:
                events.append(ArgsDelta(index, args[self._args_sent :]))
            call = CallEnd(index, self._name, args)
            self.calls.append(call)
            events.append(call)
            self._buffer = self._buffer[end + len(TOOL_CALL_CLOSE) :]
            self._in_call = False
            return True
        safe = len(self._buffer) - _TAIL
        if safe > self._args_sent:
            events.append(ArgsDelta(index, self._buffer[self._args_sent : safe]))
            self._args_sent = safe
        return False


def _strip_closing_brace(raw: str) -> str:
    """`A}` (plus whitespace) → `A`: the call object's own closing brace is not part of A."""
    text = raw.rstrip()
    return text[:-1].rstrip() if text.endswith("}") else text


def _partial_suffix(text: str, tag: str) -> int:
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def valid_arguments(arguments: str) -> bool:
    try:
        return isinstance(json.loads(arguments), dict)
    except ValueError:
        return False
