"""Closing a constrained output within its token budget.

A grammar makes every token valid, but a sampled output can still run out of `max_tokens` in the
middle of a string or an array, and then it does not parse. `Closer` follows the output byte by
byte (the JSON itself through `json_closing.JsonValue`, a parser that keeps its stack and, for each
open value, the schemas it may still be following; here, the tool-call tags around it) and can
say at any moment the shortest text that completes it validly: close the open string (completing
an enum value, a required length, a date), the number or the literal; add the required
properties still missing with their shortest valid values, the array items `minItems`
asks for; close the brackets; for tool calls, the call's closing tag. The engine keeps the
invariant *tokens so far + tokens of that closing ≤ max_tokens*: when the next token would break
it, the engine writes the closing instead and finishes with `length`.

Strings under a `pattern` have no closing this module can compute (None): their output may still
be cut by the budget, as without a closer.
"""

from __future__ import annotations

from collections.abc import Callable

from .constraints import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, OutputConstraint, with_refs
from .json_closing import JsonValue, Lost, join, shortest

__all__ = ["Closer"]


class Closer:
    """Follows one constrained output (an `OutputConstraint`) and says how to complete it."""

    def __init__(self, constraint: OutputConstraint) -> None:
        self._constraint = constraint
        self._answer = constraint.answer
        # Each tool's parameters, their $refs rebased so that they point into one document: the
        # call schemas' `root` (a tool's `#/$defs/Item` is `#/tools/0/$defs/Item` there).
        arguments = [with_refs(t.parameters or {"type": "object", "properties": {}}, _under(f"#/tools/{i}"))
                     for i, t in enumerate(constraint.tools)]  # fmt: skip
        self._root = {"tools": {str(i): a for i, a in enumerate(arguments)}}
        self._calls = [
            {"type": "object", "properties": {"name": {"const": t.name}, "arguments": a},
             "required": ["name", "arguments"], "additionalProperties": False}
            for t, a in zip(constraint.tools, arguments, strict=True)
        ]  # fmt: skip
        self._mode = "json" if not constraint.tools else "outside"
        self._json = None if constraint.tools else JsonValue(self._answer or {}, self._answer or {})
        self._outside = bytearray()  # text since the last call (tools), to find the tags
        self._calls_done = 0
        self._lost = False

    def feed(self, data: bytes) -> None:
        if self._lost:
            return
        try:
            for c in data:
                self._feed(c)
        except (Lost, ValueError, KeyError, IndexError, TypeError, RecursionError):
            self._lost = True

    def _feed(self, c: int) -> None:
        if self._mode == "json":
            assert self._json is not None
            if self._json.done and self._constraint.tools:
                self._mode, self._outside = "after", bytearray()
                self._feed(c)
                return
            self._json.feed(c)
            return
        self._outside.append(c)
        text = bytes(self._outside)
        if self._mode == "outside":
            stripped = text.lstrip()
            if stripped.endswith(TOOL_CALL_OPEN.encode()):
                self._mode, self._outside = "open", bytearray()
                self._json = JsonValue({"anyOf": self._calls}, self._root)
            elif (self._answer is not None and self._constraint.calls == "auto" and stripped
                  and not TOOL_CALL_OPEN.encode().startswith(stripped[:1])):  # fmt: skip
                self._mode, self._json = "json", JsonValue(self._answer, self._answer)
                self._constraint = OutputConstraint(answer=self._answer)  # an answer, not calls
                self._json.feed(c)
        elif self._mode == "open":  # an optional newline, then the call's JSON
            if c != ord("\n"):
                self._mode = "json"
                assert self._json is not None
                self._json.feed(c)
        elif self._mode == "after" and text.strip().endswith(TOOL_CALL_CLOSE.encode()):
            self._mode, self._outside = "outside", bytearray()
            self._calls_done += 1

    def closing(self) -> str | None:
        """The shortest text completing the output validly ("" if it is complete); None if unknown."""
        if self._lost:
            return None
        try:
            return self._closing()
        except (Lost, ValueError, KeyError, IndexError, TypeError, RecursionError):
            return None

    def _closing(self) -> str | None:
        call = JsonValue({"anyOf": self._calls}, self._root) if self._calls else None
        whole_call = None if call is None else join(TOOL_CALL_OPEN, call.closing(), TOOL_CALL_CLOSE)
        if self._mode == "json" and not self._constraint.tools:
            assert self._json is not None
            return self._json.closing()
        if self._mode in ("open", "json"):
            assert self._json is not None
            return join("", self._json.closing(), TOOL_CALL_CLOSE)
        if self._mode == "after":
            typed = bytes(self._outside).strip().decode("utf-8", "replace")
            return TOOL_CALL_CLOSE[len(typed):] if TOOL_CALL_CLOSE.startswith(typed) else None
        # outside any call
        if self._calls_done or (self._constraint.calls == "auto" and self._answer is None):
            return ""
        typed = bytes(self._outside).lstrip().decode("utf-8", "replace")
        if typed and TOOL_CALL_OPEN.startswith(typed):
            return None if whole_call is None else whole_call[len(typed):]
        answer = JsonValue(self._answer, self._answer).closing() if self._answer is not None else None
        return shortest([whole_call, answer])


def _under(base: str) -> Callable[[str], str]:
    """A local $ref ('#', '#/a') moved under `base` ('#/b': '#/b', '#/b/a')."""
    return lambda ref: base + ref[1:]
