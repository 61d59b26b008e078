"""Structured outputs that always parse: at temperature 1 and small max_tokens, the default model's
JSON answers and tool-call arguments parse and validate every time, recursive schemas included; when
the budget forced the closing, finish_reason stays `length`; a budget too small for any valid output
is a 400, and so is a schema past what constrained decoding can hold, with the server still serving."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import API_KEY
from tests.spec import validate
from tests.unit.test_closing import RECURSIVE

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "tags": {"type": "array",
                                                                                "items": {"type": "string"}},
                                           "age": {"type": "integer"}},
          "required": ["name", "tags", "age"], "additionalProperties": False}  # fmt: skip
ASK = [{"role": "user", "content": "Describe a person with many tags, in detail."}]
NOTE = {"type": "object", "properties": {"title": {"type": "string"},
                                         "lines": {"type": "array", "items": {"type": "string"}},
                                         "priority": {"type": "string", "enum": ["low", "high"]}},
        "required": ["title", "lines", "priority"], "additionalProperties": False}  # fmt: skip
TOOL = {"type": "function", "function": {"name": "save_note", "strict": True, "parameters": NOTE}}
SEEDS = range(10)


def _answer(client, max_tokens: int, seed: int):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(
        model="smollm2-135m-instruct", messages=ASK, max_tokens=max_tokens, temperature=1, seed=seed,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": PERSON}},
    )  # fmt: skip


@pytest.mark.parametrize("max_tokens", [16, 32, 120])
def test_json_answers_always_parse_within_the_budget(client, max_tokens: int) -> None:
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda seed: _answer(client, max_tokens, seed), SEEDS))
    for out in outs:
        choice = out.choices[0]
        jsonschema.validate(json.loads(choice.message.content), PERSON)
        assert out.usage.completion_tokens <= max_tokens
        # `length` whenever the budget ended it, also when the closing took fewer tokens than were left
        assert choice.finish_reason == "length" or out.usage.completion_tokens < max_tokens
    if max_tokens == 16:  # at 16 tokens the closing is what ends them: still `length`, as the client should see
        assert all(out.choices[0].finish_reason == "length" for out in outs)


@pytest.mark.parametrize("max_tokens", [40, 64, 120])  # its shortest call takes 33
def test_tool_call_arguments_always_parse_within_the_budget(client, max_tokens: int) -> None:
    def call(seed: int):  # type: ignore[no-untyped-def]
        return client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=max_tokens, temperature=1, seed=seed, tools=[TOOL],
            tool_choice="required", messages=[{"role": "user", "content": "Save a long note about sailing knots."}],
        )  # fmt: skip

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(call, SEEDS))
    for out in outs:
        (tool_call,) = out.choices[0].message.tool_calls
        assert tool_call.function.name == "save_note"
        jsonschema.validate(json.loads(tool_call.function.arguments), TOOL["function"]["parameters"])
        assert out.usage.completion_tokens <= max_tokens


def test_a_budget_too_small_for_any_valid_output_is_a_400(client) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        _answer(client, 6, 0)
    assert err.value.body["param"] == "max_tokens" and "too small" in err.value.message


@pytest.mark.parametrize("max_tokens", [24, 120])
def test_recursive_schemas_always_parse_within_the_budget(client, max_tokens: int) -> None:
    """OpenAI's linked list and UI tree and pydantic's recursive model (its root a $ref): the closer
    ends each at its shortest way out, however deep the output went."""

    def answer(job: tuple[str, int]):  # type: ignore[no-untyped-def]
        name, seed = job
        return name, client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=max_tokens, temperature=1, seed=seed,
            messages=[{"role": "user", "content": "Give me a deeply nested example."}],
            response_format={"type": "json_schema", "json_schema": {"name": name, "schema": RECURSIVE[name]}},
        )  # fmt: skip

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(answer, [(name, seed) for name in RECURSIVE for seed in range(3)]))
    for name, out in outs:
        jsonschema.validate(json.loads(out.choices[0].message.content), RECURSIVE[name])
        assert out.usage.completion_tokens <= max_tokens


def test_tool_arguments_with_defs_parse_within_the_budget(client) -> None:
    """A tool whose parameters keep nested models in `$defs`, as pydantic writes them (the Agents
    SDK's function tools): its arguments close within the budget too (its shortest call takes 44 tokens)."""
    order = {"$defs": {"Line": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                                "required": ["sku", "qty"], "additionalProperties": False}},
             "type": "object", "properties": {"lines": {"type": "array", "items": {"$ref": "#/$defs/Line"},
                                                        "minItems": 2}},
             "required": ["lines"], "additionalProperties": False}  # fmt: skip
    tool = {"type": "function", "function": {"name": "place_order", "parameters": order}}

    def call(seed: int):  # type: ignore[no-untyped-def]
        return client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=60, temperature=1, seed=seed, tools=[tool],
            tool_choice="required", messages=[{"role": "user", "content": "Order many long-named things."}],
        )  # fmt: skip

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(call, range(6)))
    for out in outs:
        (tool_call,) = out.choices[0].message.tool_calls
        jsonschema.validate(json.loads(tool_call.function.arguments), order)
        assert out.usage.completion_tokens <= 60


# Each took the whole server down before its check: a maxLength of 10^6 became a million nested
# grammar rules (llama.cpp's parser overflowed its stack: a segfault), a $ref loop kept the event loop
# resolving forever, a counted repeat of a part that can match nothing made each token take minutes on
# the thread every stream shares.
HOSTILE = [
    ({"type": "string", "maxLength": 10**6}, "'maxLength'"),
    ({"anyOf": [{"$ref": "#/$defs/x"}], "$defs": {"x": {"$ref": "#/$defs/x"}}}, "loop"),
    ({"type": "string", "pattern": "^([a-z]{0,30}){0,30}$"}, "can match nothing"),
]


@pytest.mark.parametrize(("schema", "needle"), HOSTILE)
def test_schemas_past_what_decoding_holds_are_400s_and_the_server_serves_on(server, schema: dict, needle: str) -> None:
    inner = {k: v for k, v in schema.items() if k != "$defs"}
    arguments = {"type": "object", "properties": {"v": inner}, "required": ["v"], "$defs": schema.get("$defs", {})}
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120) as http:
        for extra, param in [
            ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}},
             "response_format.json_schema.schema"),
            ({"tools": [{"type": "function", "function": {"name": "f", "parameters": arguments}}],
              "tool_choice": "required"}, "tools.[0].function.parameters"),
        ]:  # fmt: skip
            body = {"model": "smollm2-135m-instruct", "messages": ASK, "max_tokens": 16, **extra}
            reply = http.post("/chat/completions", json=body)
            assert reply.status_code == 400, reply.text
            validate("ErrorResponse", reply.json())
            error = reply.json()["error"]
            assert error["param"] == param and needle in error["message"], error
        fine = http.post("/chat/completions", json={"model": "smollm2-135m-instruct", "messages": ASK, "max_tokens": 4})
        assert fine.status_code == 200, fine.text
