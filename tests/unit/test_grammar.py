"""Schema checks name what cannot be enforced; constraints compile to grammars llama.cpp accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.backends.constraints import JSON_OBJECT_SCHEMA, OutputConstraint, ToolSignature, check_schema
from homeport.backends.llamacpp import grammar as gbnf
from homeport.errors import InvalidRequest

GOOD = [
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
    {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]},
    {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}, "k": {"enum": ["x", 1]}}},
    {"$defs": {"Item": {"type": "object", "properties": {"n": {"type": "number"}}}}, "type": "array",
     "items": {"$ref": "#/$defs/Item"}, "description": "annotations are fine", "title": "T"},
    {"type": "string", "pattern": "^[a-z]+$"},
]  # fmt: skip

BAD = [
    ({"type": "integer", "minimum": 1}, "minimum"),
    ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "not"),
    ({"type": "string", "format": "email"}, "email"),
    ({"allOf": [{"type": "object"}]}, "allOf"),
    ({"$ref": "https://example.com/schema.json"}, "local"),
    ({"type": "thing"}, "thing"),
    ({"type": "object", "properties": {"a": True}}, "Boolean"),
]


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
