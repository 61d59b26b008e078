"""Output constraints as they cross the engine seam: JSON Schema and tool signatures.

Services say *what* the output must be; each engine compiles that into its own mechanism (the
llama.cpp backend into a GBNF grammar, backends/llamacpp/grammar.py), and an upstream server
would receive the schema itself. `check_schema` is the JSON Schema subset local engines can
enforce token by token: a keyword outside it is an InvalidRequest naming it, never a 200 whose
output the schema would reject.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidRequest

__all__ = [
    "JSON_OBJECT_SCHEMA",
    "OutputConstraint",
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "ToolSignature",
    "check_schema",
    "pointer",
    "with_refs",
]

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
"""How a model writes a call in its text (the tools prompt shows it; constraints enforce it)."""

JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
"""JSON mode (`response_format: json_object`): any JSON object."""


@dataclass(frozen=True)
class ToolSignature:
    name: str
    parameters: dict[str, Any]
    """The arguments' JSON Schema (checked with `check_schema`)."""


@dataclass(frozen=True)
class OutputConstraint:
    """What the output must be. Without tools: a JSON answer of `answer`'s schema. With tools:
    calls to them, each `TOOL_CALL_OPEN {"name": …, "arguments": …} TOOL_CALL_CLOSE`, arguments
    valid under the tool's schema; one call, or up to several when `parallel`."""

    answer: dict[str, Any] | None = None
    tools: tuple[ToolSignature, ...] = ()
    calls: Literal["required", "auto"] = "required"
    """With tools. `auto`: free text, constrained from the moment a call opens; with `answer`,
    either calls or that JSON answer. `required`: the output is calls."""
    parallel: bool = False


_ANNOTATIONS = {
    "description", "title", "default", "examples", "$schema", "$id", "$comment",
    "deprecated", "readOnly", "writeOnly",
}  # fmt: skip
_SUPPORTED = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems",
    "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "$ref", "$defs",
    "definitions", "pattern", "format", "minLength", "maxLength",
}  # fmt: skip
_FORMATS = {"date", "time", "date-time", "uuid"}
_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}


MAX_COUNT = 1000
"""The largest minLength, maxLength, minItems, maxItems or `{m,n}` in a pattern that constrained
decoding enforces. A bounded repetition becomes that many nested grammar rules: llama.cpp's grammar
parser refuses a little over a thousand, and tens of thousands overflow its stack (the server dies)."""
MAX_NESTED_REPEAT = MAX_COUNT
"""The most one character of a pattern may repeat through nested bounded quantifiers
(`([a-z]{1,30}){0,30}`: 900). Each way of splitting the text so far between the levels is a grammar
stack that every candidate token is checked against, on the engine's one driver thread, which every
stream waits for (900: tens of milliseconds a token in a scratch run)."""
MAX_DEPTH = 64
"""How deep sub-schemas may nest (OpenAI allows 10 levels): the checks here, the grammar converter
and the closing (backends/json_closing.py) each recurse once per level."""
MAX_OPTIONAL = 100
"""The most optional properties one object may have. llama.cpp's grammar converter writes the ways to
leave some out as rules that grow with the square of their number, on the event loop: a scratch run
took 0.4 s at 600 and failed at about 1,000 (Python's recursion limit). Required properties are
cheap; OpenAI's strict mode makes every property required and allows null for the optional ones."""
MAX_ENUM_VALUES = 1000
"""The most enum values one schema may hold in all, as OpenAI allows. Each value that fits the text so
far is a grammar stack every candidate token is checked against (a scratch run, values sharing a
long prefix: 60 ms a check at 500, 0.44 s at 1,000, 2 s at 5,000)."""
MAX_ALTERNATIVES = 1000
"""The most single-type alternatives one schema may spread into through anyOf/oneOf, $refs and type
lists: the closing weighs each of them."""


def check_schema(schema: Any, param: str) -> None:
    """Raise InvalidRequest (naming the keyword and where) if the schema can't be enforced."""
    _check(schema, param, "", 0)
    _check_refs(schema, param)


def _check(node: Any, param: str, where: str, depth: int) -> None:
    here = where or "the schema root"
    if not isinstance(node, dict):
        if isinstance(node, bool):
            raise InvalidRequest(f"Boolean sub-schemas are not supported (at {here}).", param=param)
        raise InvalidRequest(f"A schema must be a JSON object (at {here}).", param=param)
    if depth > MAX_DEPTH:
        raise InvalidRequest(f"The schema nests deeper than {MAX_DEPTH} levels (at {here}).", param=param)
    _check_values(node, param, here)
    for key, value in node.items():
        if key in _ANNOTATIONS:
            continue
        if key not in _SUPPORTED:
            raise InvalidRequest(
                f"The JSON Schema keyword '{key}' (at {here}) cannot be enforced by constrained decoding. "
                f"Supported keywords: {', '.join(sorted(_SUPPORTED))}.",
                param=param,
            )
        if key == "type":
            types = value if isinstance(value, list) else [value]
            if not types or not all(isinstance(t, str) and t in _TYPES for t in types):
                raise InvalidRequest(f"Unknown type {value!r} (at {here}).", param=param)
        elif key == "format" and not (isinstance(value, str) and value in _FORMATS):
            raise InvalidRequest(
                f"The string format '{value}' (at {here}) cannot be enforced; supported: {sorted(_FORMATS)}.",
                param=param,
            )
        elif key == "$ref" and not (isinstance(value, str) and (value == "#" or value.startswith("#/"))):
            raise InvalidRequest(f"Only local '$ref's ('#' or '#/...') are supported (at {here}).", param=param)
        elif key == "properties" or key in ("$defs", "definitions"):
            for name, sub in _as_dict(value, key, param, here).items():
                _check(sub, param, f"{where}/{key}/{name}", depth + 1)
        elif key in ("anyOf", "oneOf", "prefixItems"):
            for i, sub in enumerate(_as_list(value, key, param, here)):
                _check(sub, param, f"{where}/{key}/{i}", depth + 1)
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            _check(value, param, f"{where}/{key}", depth + 1)
        elif key == "additionalProperties" and not isinstance(value, bool):
            raise InvalidRequest(f"'additionalProperties' must be a boolean or a schema (at {here}).", param=param)


def _check_values(node: dict[str, Any], param: str, here: str) -> None:
    """The keywords whose values must make sense for any value to satisfy them, and stay within
    what a grammar can hold."""
    for key in ("minLength", "maxLength", "minItems", "maxItems"):
        count = node.get(key, 0)
        if not (isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= MAX_COUNT):
            raise InvalidRequest(f"'{key}' (at {here}) must be a whole number from 0 to {MAX_COUNT}: larger bounds "
                                 "cannot be enforced by constrained decoding.", param=param)  # fmt: skip
    for low, high in (("minLength", "maxLength"), ("minItems", "maxItems")):
        if low in node and high in node and node[low] > node[high]:
            raise InvalidRequest(f"'{low}' ({node[low]}) is greater than '{high}' ({node[high]}) at {here}: "
                                 "no value satisfies it.", param=param)  # fmt: skip
    required = node.get("required", [])
    defined: dict[str, Any] = node["properties"] if isinstance(node.get("properties"), dict) else {}
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise InvalidRequest(f"'required' (at {here}) must be an array of property names.", param=param)
    for name in required:
        if name not in defined:
            raise InvalidRequest(f"'required' (at {here}) names '{name}', which 'properties' does not define: "
                                 "constrained decoding can only require a defined property.", param=param)  # fmt: skip
    if len(optional := [name for name in defined if name not in required]) > MAX_OPTIONAL:
        raise InvalidRequest(f"The object at {here} has {len(optional)} optional properties: constrained decoding "
                             f"enforces at most {MAX_OPTIONAL} (list the others in 'required', allowing null).",
                             param=param)  # fmt: skip
    if "enum" in node and not (isinstance(node["enum"], list) and node["enum"]):
        raise InvalidRequest(f"'enum' (at {here}) must be a non-empty array.", param=param)
    if "pattern" in node:
        _check_pattern(node["pattern"], param, here)


def _check_pattern(pattern: Any, param: str, here: str) -> None:
    if not isinstance(pattern, str):
        raise InvalidRequest(f"'pattern' (at {here}) must be a string.", param=param)
    shape = _PatternShape(pattern)
    if shape.largest > MAX_COUNT:
        raise InvalidRequest(f"'pattern' (at {here}) repeats something {shape.largest} times: constrained decoding "
                             f"enforces at most {MAX_COUNT}.", param=param)  # fmt: skip
    if shape.nested > MAX_NESTED_REPEAT:
        raise InvalidRequest(f"'pattern' (at {here}) nests bounded quantifiers {shape.nested} repetitions deep: "
                             f"constrained decoding enforces at most {MAX_NESTED_REPEAT}.", param=param)  # fmt: skip
    if shape.empty_repeated:
        raise InvalidRequest(f"'pattern' (at {here}) repeats a part that can match nothing a counted number of times "
                             f"('{shape.empty_repeated}'): constrained decoding cannot enforce that in time; use "
                             "'*' or require a character in the part.", param=param)  # fmt: skip


class _PatternShape:
    """What makes a pattern costly as a grammar: `largest`, the largest count of one `{m,n}`;
    `nested`, the largest product of counts of bounded quantifiers nested in one another; and
    `empty_repeated`, the first `{m,n}` (n > 1) whose part can match nothing. The last is what
    explodes: each way of spreading empty matches over the copies is a grammar stack
    (`([a-z]?){0,30}` took 5 s a token, `{0,1000}` never finished). `*`, `+` and `?` count 1: a
    grammar repeats them by recursion, not by copies, and that stays cheap."""

    def __init__(self, pattern: str) -> None:
        self.largest = self.nested = 0
        self.empty_repeated: str | None = None
        # per open group: its most repeated atom (product, quantifiers), whether the alternative
        # being read can match nothing so far, and whether an earlier alternative could
        self._groups: list[list[Any]] = [[(1, 0), True, False]]
        self._last: tuple[int, int, bool] | None = None  # the atom just read: product, quantifiers, can be empty
        i = 0
        while i < len(pattern):
            i = self._read(pattern, i)
        self._commit()

    def _read(self, pattern: str, i: int) -> int:
        c = pattern[i]
        if c == "{" and self._last is not None and (counted := _COUNTED.match(pattern, i)):
            low, high = int(counted[1]), counted[2]
            count = max(low, int(high) if high else low, 1)
            product, levels, empty = self._last
            if empty and count > 1 and self.empty_repeated is None:
                self.empty_repeated = counted[0]
            self.largest = max(self.largest, count)
            self._last = (product * count, levels + 1, empty or low == 0)
            if levels + 1 > 1:
                self.nested = max(self.nested, product * count)
            return counted.end()
        if c in "?*" and self._last is not None:
            self._last = (*self._last[:2], True)
            return i + 1
        if c == "+" and self._last is not None:
            return i + 1
        self._commit()
        if c == "(":
            self._groups.append([(1, 0), True, False])
        elif c == ")" and len(self._groups) > 1:
            most, alternative, earlier = self._groups.pop()
            self._last = (*most, alternative or earlier)
        elif c == "|":
            group = self._groups[-1]
            group[1], group[2] = True, group[2] or group[1]
        elif c in "^$":  # anchors match no character
            self._last = None
        elif c == "[":  # a character class is one atom
            end = _CLASS.match(pattern, i)
            self._last = (1, 0, False)
            return end.end() if end else i + 1
        else:  # a character, or an escape (two)
            self._last = (1, 0, False)
            return i + 2 if c == "\\" else i + 1
        return i + 1

    def _commit(self) -> None:
        """The atom just read joins its group's sequence."""
        if self._last is None:
            return
        group = self._groups[-1]
        group[0] = max(group[0], self._last[:2])
        group[1] = group[1] and self._last[2]
        self._last = None


_COUNTED = re.compile(r"\{(\d+)(?:,(\d*))?\}")
_CLASS = re.compile(r"\[\^?\]?(?:\\.|[^\]\\])*\]")


def _check_refs(root: dict[str, Any], param: str) -> None:
    """Every $ref points to a schema in the document; no chain of $refs and anyOf/oneOf options leads
    back to where it started before an object or array (no value satisfies such a loop, and
    following it never ends); no schema spreads into more than MAX_ALTERNATIVES alternatives."""
    schemas = _schemas(root)
    values = sum(len(node["enum"]) for node, _ in schemas if "enum" in node)
    if values > MAX_ENUM_VALUES:
        raise InvalidRequest(f"The schema holds {values} enum values in all: constrained decoding enforces at most "
                             f"{MAX_ENUM_VALUES}, as OpenAI does.", param=param)  # fmt: skip
    ids = {id(node) for node, _ in schemas}
    moves: dict[int, list[dict[str, Any]]] = {}  # each schema's $ref target and anyOf/oneOf options
    for node, where in schemas:
        moves[id(node)] = [o for key in ("anyOf", "oneOf") for o in node.get(key, [])]
        if "$ref" in node:
            target = pointer(root, node["$ref"])
            if id(target) not in ids:
                raise InvalidRequest(f"'$ref' (at {where}) does not point to a schema in this one: {node['$ref']!r}.",
                                     param=param)  # fmt: skip
            moves[id(node)].append(target)
    spread = _spreads([node for node, _ in schemas], moves)
    for node, where in schemas:
        if spread[id(node)] < 0:
            raise InvalidRequest(f"The schema at {where} leads into a loop of $refs and anyOf/oneOf options with no "
                                 "object or array in between: no value satisfies it.", param=param)  # fmt: skip
        if spread[id(node)] > MAX_ALTERNATIVES:
            raise InvalidRequest(f"The schema at {where} spreads into more than {MAX_ALTERNATIVES} alternatives "
                                 "(anyOf/oneOf, $refs and type lists).", param=param)  # fmt: skip


def _spreads(nodes: list[dict[str, Any]], moves: dict[int, list[dict[str, Any]]]) -> dict[int, int]:
    """How many single-type alternatives each schema spreads into through `moves`; -1 for one whose
    moves lead back to it (or into such a loop). A walk with its own stack: a chain of $refs may
    be longer than Python's recursion allows."""
    spread: dict[int, int] = {}
    for start in nodes:
        stack, path = [(start, iter(moves[id(start)]))], {id(start)}
        while stack:
            node, ahead = stack[-1]
            step = next(ahead, None)
            if step is not None:
                if id(step) not in spread and id(step) not in path:
                    stack.append((step, iter(moves[id(step)])))
                    path.add(id(step))
                continue
            stack.pop()
            path.discard(id(node))
            if id(node) in spread:
                continue
            counts = [spread.get(id(n), -1) for n in moves[id(node)]]  # not yet counted: on the path, a loop
            types = node.get("type")
            own = len(types) if isinstance(types, list) and types else 1
            total = -1 if any(c < 0 for c in counts) else sum(counts) if counts else own
            spread[id(node)] = min(total, MAX_ALTERNATIVES + 1)
    return spread


def _schemas(root: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Every sub-schema (checked by _check first) with where it is."""
    found, todo = [], [(root, "the schema root")]
    while todo:
        node, where = todo.pop()
        found.append((node, where))
        base = "" if where == "the schema root" else where
        for key, value in node.items():
            if key in ("properties", "$defs", "definitions"):
                todo.extend((sub, f"{base}/{key}/{name}") for name, sub in value.items())
            elif key in ("anyOf", "oneOf", "prefixItems"):
                todo.extend((sub, f"{base}/{key}/{i}") for i, sub in enumerate(value))
            elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
                todo.append((value, f"{base}/{key}"))
    return found


def pointer(root: Any, ref: str) -> Any:
    """What a local $ref ('#' or '#/a/b') points to in the document `root`, or None."""
    target: Any = root
    for part in ref.removeprefix("#/").split("/") if ref != "#" else []:
        if not isinstance(target, dict) or part not in target:
            return None
        target = target[part]
    return target


def with_refs(schema: Any, change: Callable[[str], str]) -> Any:
    """A copy of `schema` whose local $refs ('#', '#/...') are `change(ref)`."""
    if isinstance(schema, list):
        return [with_refs(item, change) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copied = {key: with_refs(value, change) for key, value in schema.items()}
    ref = schema.get("$ref")
    if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
        copied["$ref"] = change(ref)
    return copied


def _as_dict(value: Any, key: str, param: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{key}' must be an object (at {where}).", param=param)
    return value


def _as_list(value: Any, key: str, param: str, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"'{key}' must be a non-empty array (at {where}).", param=param)
    return value
