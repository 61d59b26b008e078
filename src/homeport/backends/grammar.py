"""GBNF grammars for constrained decoding: JSON, JSON Schema, and tool calls.

The JSON Schema → GBNF conversion is llama.cpp's own (`llama_cpp.llama_grammar`). It
silently ignores keywords it cannot express, so every schema is checked first: a keyword
outside the supported set is an InvalidRequest naming it, never a 200 whose output the
schema would reject.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..errors import InvalidRequest

__all__ = [
    "JSON_OBJECT",
    "TOOL_CALL_OPEN",
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_TRIGGER",
    "MAX_PARALLEL_CALLS",
    "check_schema",
    "schema_grammar",
    "tool_calls_grammar",
]

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
MAX_PARALLEL_CALLS = 8  # a bound lets a model that repeats its call still finish its turn
# Lazy activation for tool_choice=auto: llama.cpp full-matches this against all text so far
# and constrains from the capture group on. Anchored at the start on purpose: a pattern that
# searches the whole buffer costs time quadratic in the output on every token.
TOOL_CALL_TRIGGER = r"\s*(<tool_call>[\s\S]*)"

JSON_OBJECT = r"""root ::= object
value ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt/] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,4})? ws
ws ::= | " " | "\n" [ \t]{0,8}
"""

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


def schema_grammar(schema: dict[str, Any]) -> str:
    """A grammar whose language is the JSON documents valid under `schema` (checked first)."""
    converter = _converter()
    converter.visit(converter.resolve_refs(_namespaced(schema, "s"), "schema"), "")
    return converter.format_grammar()


def tool_calls_grammar(
    tools: list[tuple[str, dict[str, Any]]], *, parallel: bool, answer_schema: dict[str, Any] | None = None
) -> str:
    """Tool calls as `<tool_call>{"name": N, "arguments": A}</tool_call>`, one or (parallel) more.

    Each name is bound to its own argument schema. With `answer_schema`, a JSON answer of
    that schema is the alternative to calling (tool_choice=auto with a JSON response_format).
    """
    converter = _converter()
    alternatives = []
    for i, (name, schema) in enumerate(tools):
        schema = schema or {"type": "object", "properties": {}}  # no parameters: an empty object
        args = converter.visit(converter.resolve_refs(_namespaced(schema, f"t{i}"), f"tool{i}"), f"t{i}-args")
        head = converter._format_literal(f'{{"name": {json.dumps(name)}, "arguments": ')
        alternatives.append(f"{head} {args}")
    converter._add_rule("call-body", " | ".join(alternatives))
    converter._add_rule("call", f'"{TOOL_CALL_OPEN}" "\\n"? call-body "}}" "\\n"? "{TOOL_CALL_CLOSE}"')
    more = MAX_PARALLEL_CALLS - 1 if parallel else 0
    converter._add_rule("calls", f'call ("\\n" call){{0,{more}}}' if more else "call")
    body = "calls"
    if answer_schema is not None:
        answer = converter.visit(converter.resolve_refs(_namespaced(answer_schema, "a"), "answer"), "answer")
        body = f"(calls | {answer})"
    converter._add_rule("root", f"[ \\t\\n]{{0,4}} {body}")
    return converter.format_grammar()


def _converter():  # -> llama_cpp.llama_grammar.SchemaConverter
    from llama_cpp.llama_grammar import SchemaConverter

    return SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)


def _namespaced(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy whose $defs names carry `prefix`: llama.cpp names ref rules by their last path
    segment, so two schemas that both define `#/$defs/Item` would otherwise share one rule."""
    schema = copy.deepcopy(schema)

    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
        elif isinstance(node, dict):
            for key in ("$defs", "definitions"):
                if isinstance(node.get(key), dict):
                    node[key] = {f"{prefix}-{k}": v for k, v in node[key].items()}
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.count("/") == 2 and ref.split("/")[1] in ("$defs", "definitions"):
                _, section, name = ref.split("/")
                node["$ref"] = f"#/{section}/{prefix}-{name}"
            for value in node.values():
                visit(value)

    visit(schema)
    return schema
