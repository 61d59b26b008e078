"""One JSON value under a JSON schema, followed byte by byte, and the shortest text that completes
it validly at any moment (backends/closing.py has why; its `Closer` adds the tool-call framing).

`JsonValue` is a JSON parser that keeps its stack and, for each open value, the schemas it may
still be following: its `closing()` closes the open string (completing an enum value, a required
length, a date), the number or the literal; adds the required properties still missing with their
shortest valid values and the array items `minItems` asks for; and closes the brackets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .constraints import pointer

__all__ = ["JsonValue", "Lost", "join", "shortest"]

_WS = b" \t\n\r"
_LITERALS = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}
_NUMBER = set(b"0123456789+-.eE")
_FORMATS = {"date": "2000-01-01", "time": "00:00:00Z", "date-time": "2000-01-01T00:00:00Z",
            "uuid": "00000000-0000-0000-0000-000000000000"}  # fmt: skip


_NO_CUT = 1 << 62  # JsonValue.shortest: no evaluation was cut short
_ANY: dict[str, Any] = {}  # the schema of any value (one object, so JsonValue.shortest keeps one result for it)


class Lost(Exception):
    """The output left what the closer can follow: it stops (closing() is None from then on)."""


@dataclass
class _Entry:
    schema: dict[str, Any]
    parent: int
    """Index of the entry of the frame below this one that this schema came from (-1: none)."""


@dataclass
class _Frame:
    kind: str  # root | object | array | string | key | number | literal
    entries: list[_Entry]
    state: str = ""
    seen: list[str] = field(default_factory=list)  # object: keys so far
    count: int = 0  # array: items so far
    text: bytearray = field(default_factory=bytearray)  # string/key/number/literal: bytes so far
    length: int = 0  # string: characters so far (escapes count one)
    escape: int = 0  # string: 0, 1 after a backslash, 2-5 inside \uXXXX


class JsonValue:
    """One JSON value under a schema, followed byte by byte."""

    def __init__(self, schema: dict[str, Any], root: dict[str, Any]) -> None:
        self.root = root  # the document $refs point into
        self.stack = [_Frame("root", [_Entry(schema, -1)], "value")]
        # shortest(): values found, by schema (kept alive with it, so its id is not reused), and the
        # schemas being evaluated, by their depth in that evaluation (see shortest)
        self._shortest: dict[int, tuple[dict[str, Any], str | None]] = {}
        self._open: dict[int, int] = {}
        self._cut = _NO_CUT
        self._parts: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}  # _required_parts, by schema

    @property
    def done(self) -> bool:
        return len(self.stack) == 1 and self.stack[0].state == "done"

    # ---- following the output --------------------------------------------------------------

    def feed(self, c: int) -> None:
        top = self.stack[-1]
        if top.kind in ("string", "key"):
            self._string_byte(top, c)
        elif top.kind == "number":
            if c in _NUMBER:
                top.text.append(c)
            else:
                self._finish()
                self.feed(c)
        elif top.kind == "literal":
            top.text.append(c)
            word = _LITERALS[top.text[0]]
            if not word.startswith(bytes(top.text)):
                raise Lost
            if len(top.text) == len(word):
                self._finish()
        elif c in _WS:
            return
        elif top.kind == "object":
            self._object_byte(top, c)
        elif top.kind == "array":
            if top.state in ("value_or_end", "comma_or_end") and c == ord("]"):
                self._finish()
            elif top.state == "comma_or_end":
                top.state = "value" if c == ord(",") else _lost()
            else:
                self._start_value(c)
        elif top.state == "value":  # the root
            self._start_value(c)
        else:
            raise Lost

    def _string_byte(self, top: _Frame, c: int) -> None:
        if top.escape == 1:
            top.escape = 2 if c == ord("u") else 0
            top.length += top.escape == 0
        elif top.escape >= 2:
            top.escape = 0 if top.escape == 5 else top.escape + 1
            top.length += top.escape == 0
        elif c == ord("\\"):
            top.escape = 1
        elif c == ord('"'):
            self._finish()
            return
        else:
            top.length += (c & 0xC0) != 0x80  # not a UTF-8 continuation byte
        top.text.append(c)

    def _object_byte(self, top: _Frame, c: int) -> None:
        if top.state in ("key_or_end", "key") and c == ord('"'):
            self.stack.append(_Frame("key", [], "key"))
        elif top.state in ("key_or_end", "comma_or_end") and c == ord("}"):
            self._finish()
        elif top.state == "comma_or_end" and c == ord(","):
            top.state = "key"
        elif top.state == "colon" and c == ord(":"):
            top.state = "value"
        elif top.state == "value":
            self._start_value(c)
        else:
            raise Lost

    def _start_value(self, c: int) -> None:
        parent = self.stack[-1]
        kind = {ord("{"): "object", ord("["): "array", ord('"'): "string"}.get(c)
        kind = kind or ("number" if c in _NUMBER else "literal" if c in _LITERALS else None)
        if kind is None:
            raise Lost
        wanted = {"object": ("object",), "array": ("array",), "string": ("string",),
                  "number": ("number", "integer"), "literal": ()}[kind]  # fmt: skip
        entries = []
        for i, entry in enumerate(parent.entries):
            for alternative in self._alternatives(self._child_schema(parent, entry.schema)):
                typed = _type_of(alternative)
                literal_ok = kind == "literal" and typed in (_literal_type(c), None)
                if typed is None or typed in wanted or literal_ok:
                    entries.append(_Entry(alternative, i))
        if not entries:
            raise Lost
        frame = _Frame(kind, entries, {"object": "key_or_end", "array": "value_or_end"}.get(kind, ""))
        if kind in ("number", "literal"):
            frame.text.append(c)
        self.stack.append(frame)

    def _child_schema(self, parent: _Frame, schema: dict[str, Any]) -> dict[str, Any] | None:
        if parent.kind == "root":
            return schema
        if parent.kind == "object":
            return _property(schema, parent.seen[-1])
        prefix = schema.get("prefixItems") or []
        if parent.count < len(prefix):
            return prefix[parent.count]
        items = schema.get("items")
        return items if isinstance(items, dict) else _ANY if items is None else None

    def _alternatives(self, schema: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The schema as a list of single-type alternatives ($refs resolved, anyOf/oneOf and type lists split)."""
        if schema is None:
            return []
        schema = self._resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                base = {k: v for k, v in schema.items() if k != key}
                return [alt for option in schema[key] for alt in self._alternatives({**base, **option})]
        types = schema.get("type")
        if isinstance(types, list):
            return [{**schema, "type": t} for t in types]
        return [schema]

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:  # a chain of $refs ends (constraints.check_schema refuses cycles)
            target = pointer(self.root, schema["$ref"])
            if not isinstance(target, dict):
                raise Lost
            schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **target}
        return schema

    def _finish(self) -> None:
        """The top value is complete: hand it to the frame below."""
        child = self.stack.pop()
        parent = self.stack[-1]
        if child.kind == "key":
            key = json.loads(b'"' + bytes(child.text) + b'"')
            parent.entries = [e for e in parent.entries if _property(e.schema, key) is not None]
            parent.seen.append(key)
            parent.state = "colon"
        else:
            value = _scalar(child)
            kept = {e.parent for e in child.entries if _matches(e.schema, value)}
            parent.entries = [e for i, e in enumerate(parent.entries) if i in kept]
            parent.count += 1
            parent.state = "done" if parent.kind == "root" else "comma_or_end"
        if not parent.entries:
            raise Lost

    # ---- closing ---------------------------------------------------------------------------

    def closing(self) -> str | None:
        """The shortest text that completes the value validly; None when none can be computed."""
        top = self.stack[-1]
        depth = len(self.stack) - 1
        if top.kind == "key":
            return self._close_from(depth, 0)
        return shortest([self._close_from(depth, i) for i in range(len(top.entries))])

    def _close_from(self, depth: int, index: int) -> str | None:
        """Closing of the frames from `depth` down, following entry `index` of that frame."""
        frame = self.stack[depth]
        if frame.kind == "key":  # the key, its value and its object, under each of the object's schemas
            obj = self.stack[depth - 1]
            options = []
            for entry in obj.entries:
                here, below = self._close_key(frame, obj, entry.schema), self._close_from(depth - 2, entry.parent)
                options.append(None if here is None or below is None else here + below)
            return shortest(options)
        if index < 0:
            return ""
        entry = frame.entries[index]
        here = self._close_frame(frame, entry.schema, completed=depth == len(self.stack) - 1)
        if here is None or depth == 0:
            return here
        rest = self._close_from(depth - 1, entry.parent)
        return None if rest is None else here + rest

    def _close_key(self, key: _Frame, obj: _Frame, schema: dict[str, Any]) -> str | None:
        """Closing of a key being written, its value, and its object."""
        typed = bytes(key.text).decode("utf-8", "replace")
        properties = schema.get("properties") or {}
        seen = set(obj.seen)
        extra = schema.get("additionalProperties", True)
        as_typed = None
        if extra is not False and key.escape == 0 and typed not in properties:
            # the key closed as typed: not one of the properties, whose own schemas apply
            value = self.shortest(extra if isinstance(extra, dict) else _ANY)
            as_typed = None if value is None else (typed, '":' + value)
        names = [name for name in properties if name.startswith(typed) and name not in seen]
        rest_of_key = len(typed) + 1  # the typed characters and the opening quote
        return self._close_after(schema, seen, names, lambda name, value: json.dumps(name)[rest_of_key:] + ":" + value,
                                 as_typed)  # fmt: skip

    def _close_frame(self, frame: _Frame, schema: dict[str, Any], *, completed: bool) -> str | None:
        """Text closing `frame`; `completed`: it is the top frame (else its child was just closed)."""
        kind = frame.kind
        if kind == "root":
            return "" if frame.state == "done" or not completed else self.shortest(schema)
        if kind == "string":
            return self._close_string(frame, schema)
        if kind == "number":
            return "0" if frame.text[-1:] in (b"-", b"+", b".", b"e", b"E") else ""
        if kind == "literal":
            return _LITERALS[frame.text[0]][len(frame.text) :].decode()
        if kind == "array":
            count = frame.count + (not completed)
            text = ""
            if completed and frame.state == "value":  # after a comma: one more item is due
                item = self.shortest(self._child_schema(frame, schema) or _ANY)
                if item is None:
                    return None
                text, count = item, count + 1
            for i in range(count, int(schema.get("minItems", 0))):
                probe = _Frame("array", [], count=i)
                item = self.shortest(self._child_schema(probe, schema) or _ANY)
                if item is None:
                    return None
                text += ("," if i or text else "") + item
            return text + "]"
        # object
        if completed and frame.state in ("colon", "value"):
            value = self.shortest(_property(schema, frame.seen[-1]) or _ANY)
            head = ":" if frame.state == "colon" else ""
            return None if value is None else join(head + value, "", self._close_object(schema, frame.seen))
        if completed and frame.state == "key":  # after a comma: a key is due
            return self._close_after_comma(schema, frame.seen)
        return self._close_object(schema, frame.seen)

    def _close_object(self, schema: dict[str, Any], seen: list[str]) -> str | None:
        """The required properties not yet written, with their shortest values, and the brace."""
        missing = self._missing(schema, set(seen))
        if missing is None:
            return None
        return "".join(("," if seen or i else "") + part for i, part in enumerate(missing.values())) + "}"

    def _missing(self, schema: dict[str, Any], seen: set[str]) -> dict[str, str] | None:
        """The required properties not in `seen`, each as `"name":shortest value`; None if one's is unknown."""
        parts = self._required_parts(schema)
        if parts is None:
            return None
        return {name: part for name, part in parts.items() if name not in seen}

    def _required_parts(self, schema: dict[str, Any]) -> dict[str, str] | None:
        """Every required property of `schema` as `"name":shortest value` (None if one's is unknown),
        built once per schema for the closings asked for after every token. Not kept when built
        inside shortest(): a value there may rest on a cut (see shortest)."""
        key = id(schema)
        if key in self._parts:
            return self._parts[key][1]
        properties = schema.get("properties") or {}
        parts: dict[str, str] = {}
        for name in schema.get("required") or []:
            if name in properties and name not in parts:
                if (value := self.shortest(properties[name])) is None:
                    return None
                parts[name] = json.dumps(name) + ":" + value
        if not self._open:
            self._parts[key] = (schema, parts)
        return parts

    def _close_after_comma(self, schema: dict[str, Any], seen: list[str]) -> str | None:
        properties = schema.get("properties") or {}
        done = set(seen)
        extra = schema.get("additionalProperties", True)
        empty_key = None
        if extra is not False:
            value = self.shortest(extra if isinstance(extra, dict) else _ANY)
            empty_key = None if value is None else ("", '"":' + value)
        names = [name for name in properties if name not in done]
        return self._close_after(schema, done, names, lambda name, value: json.dumps(name) + ":" + value, empty_key)

    def _close_after(self, schema: dict[str, Any], seen: set[str], names: list[str],
                     head: Callable[[str, str], str], extra: tuple[str, str] | None) -> str | None:  # fmt: skip
        """The shortest closing that writes one property next — `head(name, value)` for one of
        `names` (in order), or `extra` (a key outside `properties` and its text) — then the required
        properties still missing, each after a comma, and the brace; the first on a tie.

        Every required property has to be written anyway, so writing one of them next costs the
        same whichever it is, and less than writing any other first: the first required one among
        `names` is the closing, and only without one are the others weighed. (Building every
        option instead cost the object's size per property: 166 ms a token at 2,000 properties.)"""
        missing = self._missing(schema, seen)
        if missing is None:
            return None
        properties = schema.get("properties") or {}
        first = next((name for name in names if name in missing), None)
        options = [(first, head(first, self.shortest(properties[first]) or ""))] if first is not None else [
            (name, head(name, value)) for name in names if (value := self.shortest(properties[name])) is not None]
        if extra is not None and first is None:
            options.append(extra)
        if not options:
            return None
        name, text = min(options, key=lambda option: len(option[1]))
        return text + "".join("," + part for other, part in missing.items() if other != name) + "}"

    def _close_string(self, frame: _Frame, schema: dict[str, Any]) -> str | None:
        typed = bytes(frame.text)
        if frame.escape == 1:
            return "n" + self._close_string_plain(frame, schema, 1)
        if frame.escape >= 2:
            return "0" * (6 - frame.escape) + self._close_string_plain(frame, schema, 1)
        choices = [schema["const"]] if "const" in schema else schema.get("enum")
        if choices is not None:
            options = [json.dumps(v)[1:] for v in choices if isinstance(v, str)]
            return shortest([o[len(typed):] for o in options if o.encode().startswith(typed)])
        if "pattern" in schema:
            return None
        template = _FORMATS.get(schema.get("format", ""))
        if template is not None:
            return template[len(typed):] + '"' if len(typed) <= len(template) else '"'
        return self._close_string_plain(frame, schema, 0)

    @staticmethod
    def _close_string_plain(frame: _Frame, schema: dict[str, Any], pending: int) -> str:
        short = int(schema.get("minLength", 0)) - frame.length - pending
        return "a" * max(short, 0) + '"'

    def shortest(self, schema: dict[str, Any]) -> str | None:
        """The shortest valid JSON text under `schema`; None if unknown (a `pattern`) or if none is finite.

        A recursive schema (a list node whose required `next` is a node or null) reaches itself: the
        shortest value never holds a value of the same schema inside it (the inner one would be
        shorter), so a schema met again while it is being evaluated counts as having no value there.
        A result that relied on such a cut depends on where the evaluation started and is not kept;
        every other result is, so each schema is evaluated about once."""
        key = id(schema)
        if key in self._shortest:
            return self._shortest[key][1]
        if key in self._open:
            self._cut = min(self._cut, self._open[key])
            return None
        depth, outer = len(self._open), self._cut
        self._open[key], self._cut = depth, _NO_CUT
        try:
            value = shortest([self._shortest_one(alt) for alt in self._alternatives(schema)])
        finally:
            del self._open[key]
        if self._cut >= depth:  # no cut reached past this schema: the value is its own
            self._shortest[key] = (schema, value)
            self._cut = _NO_CUT
        self._cut = min(outer, self._cut)
        return value

    def _shortest_one(self, schema: dict[str, Any]) -> str | None:
        if "const" in schema:
            return json.dumps(schema["const"], separators=(",", ":"))
        if "enum" in schema:
            return shortest([json.dumps(v, separators=(",", ":")) for v in schema["enum"]])
        typed = _type_of(schema)
        if typed == "string":
            if "pattern" in schema:
                return None
            template = _FORMATS.get(schema.get("format", ""))
            return json.dumps(template if template is not None else "a" * int(schema.get("minLength", 0)))
        if typed in ("number", "integer", None):
            return "0"
        if typed == "boolean":
            return "true"
        if typed == "null":
            return "null"
        if typed == "array":
            items = []
            for i in range(int(schema.get("minItems", 0))):
                item = self.shortest(self._child_schema(_Frame("array", [], count=i), schema) or _ANY)
                if item is None:
                    return None
                items.append(item)
            return "[" + ",".join(items) + "]"
        return join("{", "", self._close_object(schema, []))


def _lost() -> str:
    raise Lost


def shortest(options: Sequence[str | None]) -> str | None:
    known = [o for o in options if o is not None]
    return min(known, key=len) if known else None


def _type_of(schema: dict[str, Any]) -> str | None:
    typed = schema.get("type")
    if isinstance(typed, str):
        return typed
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    value = schema.get("const", (schema.get("enum") or [None])[0] if "enum" in schema else ...)
    if value is ...:
        return None
    return {str: "string", bool: "boolean", int: "number", float: "number", type(None): "null", dict: "object",
            list: "array"}.get(type(value))  # fmt: skip


def _literal_type(c: int) -> str:
    return "null" if c == ord("n") else "boolean"


def _property(schema: dict[str, Any], name: str) -> dict[str, Any] | None:
    properties = schema.get("properties") or {}
    if name in properties:
        return properties[name]
    extra = schema.get("additionalProperties", True)
    return None if extra is False else extra if isinstance(extra, dict) else _ANY


def _scalar(frame: _Frame) -> Any:
    """The value of a completed string, number or literal frame (... for containers)."""
    if frame.kind == "string":
        return json.loads(b'"' + bytes(frame.text) + b'"')
    if frame.kind in ("number", "literal"):
        return json.loads(bytes(frame.text))
    return ...


def _matches(schema: dict[str, Any], value: Any) -> bool:
    if value is ...:
        return True
    if "const" in schema:
        return bool(schema["const"] == value)
    if "enum" in schema:
        return value in schema["enum"]
    return True


def join(head: str, middle: str | None, tail: str | None) -> str | None:
    """head + middle + tail, or None when a part is unknown."""
    return None if middle is None or tail is None else head + middle + tail
