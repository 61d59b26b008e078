"""Output constraints as they cross the engine seam: JSON Schema and tool signatures.

Services say *what* the output must be; each engine compiles that into its own mechanism (the
llama.cpp backend into a GBNF grammar, backends/llamacpp/grammar.py), and an upstream server
would receive the schema itself. `check_schema` is the JSON Schema subset local engines can
enforce token by token: a keyword outside it is an InvalidRequest naming it, never a 200 whose
output the schema would reject.
"""

from __future__ import annotations

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


def check_schema(schema: Any, param: str) -> None:
    """Raise InvalidRequest (naming the keyword and where) if the schema can't be enforced."""
    _check(schema, param, "")


def _check(node: Any, param: str, where: str) -> None:
    here = where or "the schema root"
    if not isinstance(node, dict):
        if isinstance(node, bool):
            raise InvalidRequest(f"Boolean sub-schemas are not supported (at {here}).", param=param)
        raise InvalidRequest(f"A schema must be a JSON object (at {here}).", param=param)
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
            if not all(t in _TYPES for t in types):
                raise InvalidRequest(f"Unknown type {value!r} (at {here}).", param=param)
        elif key == "format" and value not in _FORMATS:
            raise InvalidRequest(
                f"The string format '{value}' (at {here}) cannot be enforced; supported: {sorted(_FORMATS)}.",
                param=param,
            )
        elif key == "$ref" and not (isinstance(value, str) and value.startswith("#/")):
            raise InvalidRequest(f"Only local '$ref's ('#/...') are supported (at {here}).", param=param)
        elif key == "properties" or key in ("$defs", "definitions"):
            for name, sub in _as_dict(value, key, param, here).items():
                _check(sub, param, f"{where}/{key}/{name}")
        elif key in ("anyOf", "oneOf", "prefixItems"):
            for i, sub in enumerate(_as_list(value, key, param, here)):
                _check(sub, param, f"{where}/{key}/{i}")
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            _check(value, param, f"{where}/{key}")


def _as_dict(value: Any, key: str, param: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{key}' must be an object (at {where}).", param=param)
    return value


def _as_list(value: Any, key: str, param: str, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"'{key}' must be a non-empty array (at {where}).", param=param)
    return value
