"""Schema checks name what cannot be enforced; constraints compile to grammars llama.cpp accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.backends.constraints import (
    JSON_OBJECT_SCHEMA,
    MAX_ALTERNATIVES,
    MAX_COUNT,
    MAX_DEPTH,
    MAX_ENUM_VALUES,
    MAX_NESTED_REPEAT,
    MAX_OPTIONAL,
    OutputConstraint,
    ToolSignature,
    check_schema,
)
from homeport.backends.llamacpp import grammar as gbnf
from homeport.errors import InvalidRequest

from .test_closing import RECURSIVE

GOOD = [
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
    {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]},
    {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}, "k": {"enum": ["x", 1]}}},
    {"$defs": {"Item": {"type": "object", "properties": {"n": {"type": "number"}}}}, "type": "array",
     "items": {"$ref": "#/$defs/Item"}, "description": "annotations are fine", "title": "T"},
    {"type": "string", "pattern": "^[a-z]+$"},
    *RECURSIVE.values(),
]  # fmt: skip

# At each bound constrained decoding enforces: llama.cpp must still accept the grammar.
LARGEST = [
    {"type": "string", "minLength": MAX_COUNT - 1, "maxLength": MAX_COUNT},
    {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}}}, "maxItems": MAX_COUNT},
    {"type": "array", "items": {"type": "integer"}, "minItems": MAX_COUNT},
    {"type": "string", "pattern": f"^[a-z]{{0,{MAX_COUNT}}}$"},
    {"type": "string", "pattern": "^([a-z]{1,30}){0,30}$"},
    {"type": "string", "pattern": "^([a-z]?)*(ab?){0,50}$"},
    {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(2 * MAX_OPTIONAL)},
     "required": [f"p{i}" for i in range(MAX_OPTIONAL)]},
    {"type": "string", "enum": [f"value {i}" for i in range(MAX_ENUM_VALUES)]},
]  # fmt: skip


def _nested(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


def _doubling(levels: int) -> dict:
    """Each definition is either of two $refs to the next: 2^levels alternatives."""
    defs = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(levels)}
    return {"$defs": {**defs, f"d{levels}": {"type": "string"}}, "$ref": "#/$defs/d0"}

BAD = [
    ({"type": "integer", "minimum": 1}, "minimum"),
    ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "not"),
    ({"type": "string", "format": "email"}, "email"),
    ({"allOf": [{"type": "object"}]}, "allOf"),
    ({"$ref": "https://example.com/schema.json"}, "local"),
    ({"type": "thing"}, "thing"),
    ({"type": []}, "Unknown type []"),
    ({"type": [["string"]]}, "Unknown type"),
    ({"type": "string", "format": ["date"]}, "format"),
    ({"type": "object", "additionalProperties": 5}, "'additionalProperties' must be a boolean or a schema"),
    ({"type": "object", "properties": {"a": True}}, "Boolean"),
    # Bounds past what a grammar holds (10^6 nested rules crashed llama.cpp's parser, and the server
    # with it), and bounds no value satisfies.
    ({"type": "string", "maxLength": 10**6}, "'maxLength' (at the schema root) must be a whole number from 0 to 1000"),
    ({"type": "array", "items": {"type": "string", "minLength": MAX_COUNT + 1}}, "'minLength' (at /items)"),
    ({"type": "string", "maxLength": -1}, "'maxLength'"),
    ({"type": "array", "minItems": "3"}, "'minItems'"),
    ({"type": "array", "maxItems": 2.5}, "'maxItems'"),
    ({"type": "string", "minLength": 5, "maxLength": 2}, "'minLength' (5) is greater than 'maxLength' (2)"),
    ({"type": "array", "minItems": 3, "maxItems": 1}, "greater than"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "names 'b'"),
    ({"type": "object", "required": "a"}, "'required'"),
    ({"enum": []}, "'enum'"),
    ({"type": "string", "pattern": "^a{5000}$"}, "5000 times"),
    # A counted repeat of a part that can match nothing: at {0,30} a token took seconds to minutes while
    # every stream waited.
    ({"type": "string", "pattern": "^([a-z]{0,30}){0,30}$"}, "can match nothing"),
    ({"type": "string", "pattern": "^([a-z]?){0,1000}$"}, "'{0,1000}'"),
    ({"type": "string", "pattern": "^([a-z]{1,40}){0,30}$"}, "1200 repetitions"),
    ({"type": "string", "pattern": 7}, "'pattern'"),
    # A $ref loop with nothing in between hung the event loop.
    ({"anyOf": [{"$ref": "#/$defs/x"}], "$defs": {"x": {"$ref": "#/$defs/x"}}}, "loop"),
    ({"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}, {"type": "null"}]}, "b": {"$ref": "#/$defs/a"}},
      "$ref": "#/$defs/a"}, "loop"),
    ({"$ref": "#/$defs/nope"}, "'#/$defs/nope'"),
    ({"type": "object", "properties": {"a": {"$ref": "#/properties"}}}, "does not point to a schema"),
    (_nested(MAX_DEPTH + 1), f"deeper than {MAX_DEPTH}"),
    ({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(MAX_OPTIONAL + 1)}},
     f"{MAX_OPTIONAL + 1} optional properties"),
    (_doubling(11), f"more than {MAX_ALTERNATIVES} alternatives"),
    ({"type": "object", "properties": {"a": {"enum": list(range(600))}, "b": {"enum": [str(i) for i in range(401)]}}},
     f"1001 enum values in all: constrained decoding enforces at most {MAX_ENUM_VALUES}"),
]  # fmt: skip


@pytest.mark.parametrize("schema", GOOD)
def test_supported_schemas_pass(schema: dict) -> None:
    check_schema(schema, param="p")


@pytest.mark.parametrize(("schema", "needle"), BAD)
def test_unsupported_keywords_are_named(schema: dict, needle: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        check_schema(schema, param="response_format.json_schema.schema")
    assert needle in err.value.message and err.value.param == "response_format.json_schema.schema"


@pytest.fixture(scope="module")
def vocab():  # a llama.cpp vocabulary to compile grammars against
    import llama_cpp

    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS

    model = llama_cpp.Llama(str(locate_weights(DEFAULT_MODELS[0], Path("/x"))), vocab_only=True, verbose=False)
    yield model._model.vocab
    model.close()


def _compiles(vocab, grammar: str) -> bool:
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


@pytest.mark.parametrize("schema", GOOD)
def test_grammars_compile(vocab, schema: dict) -> None:
    assert _compiles(vocab, gbnf.schema_grammar(schema))
    tools = [("a", schema if schema.get("type") == "object" else {}), ("b", GOOD[4]), ("c", GOOD[4])]
    assert _compiles(vocab, gbnf.tool_calls_grammar(tools, parallel=True))
    assert _compiles(vocab, gbnf.tool_calls_grammar(tools, parallel=False, answer_schema=schema))


@pytest.mark.parametrize("schema", LARGEST)
def test_the_largest_bounds_pass_and_compile(vocab, schema: dict) -> None:
    check_schema(schema, param="p")
    assert _compiles(vocab, gbnf.schema_grammar(schema))


def test_bounds_just_past_the_largest_are_named() -> None:
    past = [({"type": "string", "maxLength": MAX_COUNT + 1}, "maxLength"),
            ({"type": "string", "pattern": "^([a-z]{1,101}){0,10}$"}, f"at most {MAX_NESTED_REPEAT}")]  # fmt: skip
    for schema, word in past:
        with pytest.raises(InvalidRequest, match=word):
            check_schema(schema, param="p")


def test_json_object_grammar_compiles(vocab) -> None:
    assert _compiles(vocab, gbnf.JSON_OBJECT)


def test_constraints_compile_for_every_tool_choice(vocab) -> None:
    tools = (ToolSignature("a", GOOD[0]), ToolSignature("b", {}))
    cases = [
        (OutputConstraint(answer=JSON_OBJECT_SCHEMA), gbnf.JSON_OBJECT, None),
        (OutputConstraint(answer=GOOD[1]), gbnf.schema_grammar(GOOD[1]), None),
        (OutputConstraint(tools=tools, calls="auto"), None, gbnf.TOOL_CALL_TRIGGER),  # lazy
        (OutputConstraint(answer=GOOD[0], tools=tools, calls="auto"), None, None),  # calls or the answer
        (OutputConstraint(tools=tools[:1]), None, None),
    ]
    for constraint, text, trigger in cases:
        grammar = gbnf.compile_constraint(constraint)
        assert _compiles(vocab, grammar.text) and grammar.trigger == trigger
        assert text is None or grammar.text == text
    parallel = gbnf.compile_constraint(OutputConstraint(tools=tools, parallel=True)).text
    assert f"{{0,{gbnf.MAX_PARALLEL_CALLS - 1}}}" in parallel
