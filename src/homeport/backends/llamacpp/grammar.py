"""GBNF grammars for constrained decoding: an OutputConstraint (JSON Schema, tool signatures)
compiled for llama.cpp's grammar sampler.

The JSON Schema → GBNF conversion is llama.cpp's own (`llama_cpp.llama_grammar`). It silently
ignores keywords it cannot express, which is why services check every schema against the
enforceable subset first (backends/constraints.py).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ...errors import InvalidRequest
from ..constraints import JSON_OBJECT_SCHEMA, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, OutputConstraint, pointer, with_refs

__all__ = [
    "JSON_OBJECT",
    "TOOL_CALL_TRIGGER",
    "MAX_PARALLEL_CALLS",
    "Grammar",
    "compile_constraint",
    "schema_grammar",
    "tool_calls_grammar",
]

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


@dataclass(frozen=True)
class Grammar:
    text: str
    """GBNF, root rule `root`."""
    trigger: str | None = None
    """A regex llama.cpp full-matches against the output so far; the grammar applies from its
    first capture group on (lazy grammars, for tool_choice=auto)."""


def compile_constraint(constraint: OutputConstraint) -> Grammar:
    """The grammar of a constraint (cached: the same tools come with request after request)."""
    key = [constraint.answer, [(t.name, t.parameters) for t in constraint.tools], constraint.calls, constraint.parallel]
    try:
        return _compile(json.dumps(key))
    except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as exc:  # llama.cpp's converter asserts
        raise InvalidRequest(f"The output constraint could not be compiled into a grammar: {exc}") from None


@lru_cache(maxsize=256)
def _compile(key: str) -> Grammar:
    answer, tools, calls, parallel = json.loads(key)
    if not tools:
        return Grammar(_answer_grammar(answer))
    signatures = [(name, schema) for name, schema in tools]
    if calls == "auto" and answer is None:
        return Grammar(tool_calls_grammar(signatures, parallel=parallel), TOOL_CALL_TRIGGER)
    if calls == "auto":
        return Grammar(tool_calls_grammar(signatures, parallel=parallel, answer_schema=answer))
    return Grammar(tool_calls_grammar(signatures, parallel=parallel))


def _answer_grammar(schema: dict[str, Any]) -> str:
    return JSON_OBJECT if schema == JSON_OBJECT_SCHEMA else schema_grammar(schema)


def schema_grammar(schema: dict[str, Any]) -> str:
    """A grammar whose language is the JSON documents valid under `schema` (checked first)."""
    converter = _converter()
    converter.visit(converter.resolve_refs(_namespaced(schema, "s"), "schema"), "")
    return _formatted(converter)


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
    return _formatted(converter)


_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


def _formatted(converter) -> str:  # type: ignore[no-untyped-def]
    """The grammar text. llama-cpp-python's converter lets a string hold raw control characters
    (a newline inside a string, which no JSON parser accepts); JSON forbids them, and so do we."""
    text = converter.format_grammar()
    assert _LOOSE_CHAR in text or "char ::=" not in text, "llama-cpp-python's string rule changed"
    return text.replace(_LOOSE_CHAR, _JSON_CHAR)


def _converter():  # -> llama_cpp.llama_grammar.SchemaConverter
    from llama_cpp.llama_grammar import SchemaConverter

    return SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)


def _namespaced(schema: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy whose $defs names carry `prefix`: llama.cpp names ref rules by their last path
    segment, so two schemas that both define `#/$defs/Item` would otherwise share one rule.

    Two forms llama.cpp's converter cannot follow are rewritten: a `$ref` to the root itself (`#`,
    OpenAI's recursive UI example) points to a copy of the root among the $defs, and a root that is
    itself a `$ref` beside its $defs (what pydantic writes for a recursive model) becomes what it
    points to (over its other keys, as backends/json_closing.py resolves a $ref), its $defs kept."""
    root, to_root = f"{prefix}-root", []

    def rename(ref: str) -> str:
        if ref == "#":
            to_root.append(ref)
            return f"#/$defs/{root}"
        parts = ref.split("/")
        return f"#/{parts[1]}/{prefix}-{parts[2]}" if len(parts) == 3 and parts[1] in _DEFS else ref

    schema = with_refs(schema, rename)
    for key in _DEFS:
        if isinstance(schema.get(key), dict):
            schema[key] = {f"{prefix}-{name}": sub for name, sub in schema[key].items()}
    if to_root:
        schema.setdefault("$defs", {})[root] = copy.deepcopy({k: v for k, v in schema.items() if k not in _DEFS})
    while isinstance(schema.get("$ref"), str):  # check_schema: the chain ends, at a schema
        target = pointer(schema, schema.pop("$ref"))
        schema.update({k: v for k, v in copy.deepcopy(target).items() if k not in _DEFS})
    return schema


_DEFS = ("$defs", "definitions")
