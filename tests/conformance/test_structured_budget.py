"""Structured outputs that always parse: at temperature 1 and small max_tokens, the default model's
JSON answers and tool-call arguments parse and validate every time; when the budget forced the
closing, finish_reason stays `length`; a budget too small for any valid output is a 400."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import openai
import pytest

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
