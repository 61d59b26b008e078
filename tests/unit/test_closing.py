"""The closer: every prefix of a valid output, completed with its closing, parses and validates."""

from __future__ import annotations

import json
import random

import jsonschema
import pytest

from homeport.backends.closing import Closer
from homeport.backends.constraints import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, OutputConstraint, ToolSignature

REVIEW = {"type": "object", "properties": {
    "title": {"type": "string", "minLength": 3},
    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "rating": {"type": "integer"},
    "mood": {"type": "string", "enum": ["happy", "sad", "angry"]},
    "score": {"type": "number"},
    "ok": {"type": "boolean"},
    "when": {"type": "string", "format": "date"},
    "note": {"type": ["string", "null"]},
    "extra": {"type": "string"},
}, "additionalProperties": False,
    "required": ["title", "tags", "rating", "mood", "score", "ok", "when", "note"]}  # fmt: skip

ITEM = {"type": "object", "properties": {"name": {"type": "string"}, "qty": {"type": "integer"}},
        "required": ["name", "qty"], "additionalProperties": False}  # fmt: skip
KIND_A = {"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"], "additionalProperties": False}
KIND_B = {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"], "additionalProperties": False}
NESTED = {"$defs": {"item": ITEM}, "type": "object", "properties": {
    "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 2},
    "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
    "kind": {"anyOf": [KIND_A, KIND_B]},
}, "required": ["items", "kind"], "additionalProperties": False}  # fmt: skip

# Recursive schemas, as OpenAI's structured-outputs guide writes them (a linked list through $defs; a
# UI tree whose children are `$ref: "#"`) and as pydantic writes a recursive model (the root a $ref).
NODE = {"type": "object", "properties": {"value": {"type": "number"},
                                         "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
        "required": ["value", "next"], "additionalProperties": False}  # fmt: skip
LINKED_LIST = {"$defs": {"node": NODE}, "type": "object", "properties": {"list": {"$ref": "#/$defs/node"}},
               "required": ["list"], "additionalProperties": False}  # fmt: skip
UI = {"type": "object", "properties": {
    "type": {"type": "string", "enum": ["div", "button", "form"]}, "label": {"type": "string"},
    "children": {"type": "array", "items": {"$ref": "#"}},
}, "required": ["type", "label", "children"], "additionalProperties": False}  # fmt: skip
TREE = {"$defs": {"Tree": {"type": "object", "title": "Tree", "properties": {
    "name": {"type": "string"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/Tree"}, "minItems": 1}},
    "required": ["name"]}}, "$ref": "#/$defs/Tree"}  # fmt: skip
RECURSIVE = {"linked_list": LINKED_LIST, "ui": UI, "root_ref": TREE}
UI_DOC = {"type": "form", "label": "Sign in", "children": [
    {"type": "button", "label": "Go", "children": []},
    {"type": "div", "label": "", "children": [{"type": "div", "label": "deep", "children": []}]}]}  # fmt: skip

DOCUMENTS = {
    "review": (REVIEW, [
        {"title": "Grand \"hotel\"", "tags": ["sea", "view", "caf\u00e9"], "rating": -12, "mood": "happy",
         "score": 4.5e-3, "ok": False, "when": "2024-11-30", "note": None,
         "extra": "line\nbreak \\ \u00e9t\u00e9 \\u0041"},
        {"title": "abc", "tags": ["x"], "rating": 0, "mood": "angry", "score": -0.25, "ok": True,
         "when": "1999-01-09", "note": "fine"},
    ]),
    "nested": (NESTED, [
        {"items": [{"name": "apple", "qty": 3}, {"name": "pear", "qty": 10}], "pair": ["x", 2], "kind": {"b": "yes"}},
        {"items": [{"name": "", "qty": 0}, {"name": "n", "qty": 1}, {"name": "o", "qty": 2}], "kind": {"a": 1}},
    ]),
    "json_object": ({"type": "object"}, [{"anything": [1, {"deep": None}], "s": "x"}, {}]),
    "linked_list": (LINKED_LIST, [{"list": {"value": 1, "next": {"value": 2.5, "next": {"value": -3, "next": None}}}}]),
    "ui": (UI, [UI_DOC]),
    "root_ref": (TREE, [{"name": "a", "kids": [{"name": "b", "kids": [{"name": "c"}]}, {"name": "d"}]}, {"name": "e"}]),
}


def _renderings(doc: object) -> list[str]:
    """The same document as a model might write it: compact, spaced, indented."""
    return [json.dumps(doc, separators=(",", ":"), ensure_ascii=False), json.dumps(doc, ensure_ascii=False),
            json.dumps(doc, indent=2)]  # fmt: skip


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_prefix_closes_to_a_valid_document(name: str) -> None:
    schema, docs = DOCUMENTS[name]
    constraint = OutputConstraint(answer=schema)
    empty = Closer(constraint).closing()
    assert empty is not None
    jsonschema.validate(json.loads(empty), schema)
    for doc in docs:
        jsonschema.validate(doc, schema)
        for text in _renderings(doc):
            data = text.encode()
            closer = Closer(constraint)
            rng = random.Random(len(data))
            at = 0
            while at < len(data):  # fed in token-sized pieces, as an engine feeds them
                step = rng.randint(1, 4)
                closer.feed(data[at : at + step])
                at += step
                closing = closer.closing()
                assert closing is not None, (text, at)
                done = data[:at].decode("utf-8", "ignore") + closing
                try:
                    jsonschema.validate(json.loads(done), schema)
                except (ValueError, jsonschema.ValidationError) as exc:
                    raise AssertionError(f"{data[:at]!r} + {closing!r}: {exc}") from None
            assert closer.closing() in ("", None) or json.loads(text + closer.closing())


def test_closing_is_the_shortest_value_at_the_start_and_nothing_at_the_end() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {}}},
              "required": ["a", "b"], "additionalProperties": False}  # fmt: skip
    closer = Closer(OutputConstraint(answer=schema))
    assert closer.closing() == '{"a":"","b":[]}'
    closer.feed(b'{"a": "hello wor')
    assert closer.closing() == '","b":[]}'
    closer.feed(b'ld", "b": [1, 2')
    assert closer.closing() == "]}"
    closer.feed(b"]}")
    assert closer.closing() == ""


def test_a_key_being_written_is_completed_to_a_property() -> None:
    schema = {"type": "object", "properties": {"alpha": {"type": "integer"}, "beta": {"type": "boolean"}},
              "required": ["alpha"], "additionalProperties": False}  # fmt: skip
    closer = Closer(OutputConstraint(answer=schema))
    closer.feed(b'{"al')
    assert closer.closing() == 'pha":0}'
    closer.feed(b'pha": 7, "b')
    assert closer.closing() == 'eta":true}'


def test_tool_calls_close_with_their_tag() -> None:
    tools = (ToolSignature("get_weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                           "required": ["city"], "additionalProperties": False}),
             ToolSignature("add", {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                                   "required": ["a", "b"], "additionalProperties": False}))  # fmt: skip
    closer = Closer(OutputConstraint(tools=tools, calls="required"))
    assert closer.closing() == TOOL_CALL_OPEN + '{"name":"add","arguments":{"a":0,"b":0}}' + TOOL_CALL_CLOSE
    closer.feed(TOOL_CALL_OPEN.encode() + b'\n{"name": "get_weather", "arguments": {"city": "Par')
    assert closer.closing() == '"}}' + TOOL_CALL_CLOSE
    closer.feed(b'is"}}\n</tool')
    assert closer.closing() == "_call>"
    closer.feed(b"_call>")
    assert closer.closing() == ""
    partial = Closer(OutputConstraint(tools=tools, calls="required"))
    partial.feed(b"<tool_")
    assert (partial.closing() or "").startswith("call>{")
    auto = Closer(OutputConstraint(tools=tools, calls="auto"))
    auto.feed(b"It is sunny")
    assert auto.closing() == ""  # free text is a complete answer


def test_a_pattern_string_has_no_known_closing() -> None:
    closer = Closer(OutputConstraint(answer={"type": "object", "properties": {"code": {"type": "string",
                                                                                     "pattern": "^[A-Z]{3}$"}},
                                             "required": ["code"]}))  # fmt: skip
    assert closer.closing() is None
    closer.feed(b'{"code": "AB')
    assert closer.closing() is None


def test_recursive_schemas_close_at_their_shortest() -> None:
    """The shortest value of a recursive schema takes the way out at each level (null, an empty array,
    an optional property left out), however deep the output has gone."""
    shortest = {name: Closer(OutputConstraint(answer=schema)).closing() for name, schema in RECURSIVE.items()}
    assert shortest == {"linked_list": '{"list":{"value":0,"next":null}}',
                        "ui": '{"type":"div","label":"","children":[]}', "root_ref": '{"name":""}'}  # fmt: skip
    closer = Closer(OutputConstraint(answer=LINKED_LIST))
    closer.feed(b'{"list": {"value": 1, "next": {"value": 2, "next": {"value": 3, "next": {')
    assert closer.closing() == '"value":0,"next":null}}}}}'


def test_a_recursion_no_value_can_end_has_no_closing() -> None:
    endless = {"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}, "required": ["next"]}},
               "$ref": "#/$defs/n"}  # fmt: skip
    assert Closer(OutputConstraint(answer=endless)).closing() is None


def test_tool_arguments_whose_refs_point_into_their_own_defs_close() -> None:
    """A tool's parameters are their own document (pydantic puts nested models in `$defs`): its
    $refs resolve there, with other tools beside it, recursive ones included."""
    order = {"$defs": {"Line": {"type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                                "required": ["sku", "qty"], "additionalProperties": False}},
             "type": "object", "properties": {"lines": {"type": "array", "items": {"$ref": "#/$defs/Line"},
                                                        "minItems": 1}},
             "required": ["lines"], "additionalProperties": False}  # fmt: skip
    tools = (ToolSignature("order", order), ToolSignature("draw", UI), ToolSignature("tree", TREE))
    calls = {"order": {"lines": [{"sku": "A-1", "qty": 2}, {"sku": "B", "qty": 10}]},
             "draw": UI_DOC, "tree": {"name": "a", "kids": [{"name": "b"}]}}  # fmt: skip
    schemas = {"order": order, "draw": UI, "tree": TREE}
    assert Closer(OutputConstraint(tools=tools)).closing() == (
        TOOL_CALL_OPEN + '{"name":"tree","arguments":{"name":""}}' + TOOL_CALL_CLOSE)
    for name, arguments in calls.items():
        data = (TOOL_CALL_OPEN + json.dumps({"name": name, "arguments": arguments}) + TOOL_CALL_CLOSE).encode()
        for at in range(len(TOOL_CALL_OPEN) + 1, len(data), 3):
            closer = Closer(OutputConstraint(tools=tools))
            closer.feed(data[:at])
            closing = closer.closing()
            assert closing is not None, data[:at]
            call = json.loads((data[:at].decode() + closing).removeprefix(TOOL_CALL_OPEN).removesuffix(TOOL_CALL_CLOSE))
            jsonschema.validate(call["arguments"], schemas[call["name"]])


def test_the_next_property_written_is_the_first_required_one_else_the_shortest() -> None:
    schema = {"type": "object", "properties": {"long_optional": {"type": "string"}, "b": {"type": "integer"},
                                               "c": {"type": "boolean"}, "d": {"type": "string"}},
              "required": ["c", "b"], "additionalProperties": False}  # fmt: skip

    def closing(text: bytes) -> str | None:
        closer = Closer(OutputConstraint(answer=schema))
        closer.feed(text)
        return closer.closing()

    assert closing(b'{"d": "x",') == '"b":0,"c":true}'  # after a comma: the first required in `properties`
    assert closing(b'{"d": "x", "') == 'b":0,"c":true}'  # a key just opened: the same
    assert closing(b'{"d": "x", "l') == 'ong_optional":"","c":true,"b":0}'  # a key only an optional one fits
    assert closing(b'{"c": true, "b": 1,') == '"d":""}'  # nothing required left: the shortest optional
    wide = {"type": "object", "properties": {f"f{i}": {"type": "integer"} for i in range(2000)},
            "required": [f"f{i}" for i in range(2000)]}  # fmt: skip
    closer = Closer(OutputConstraint(answer=wide))
    closer.feed(b'{"f0": 1, "f1": 2, "f')
    assert closer.closing() == "2\":0," + ",".join(f'"f{i}":0' for i in range(3, 2000)) + "}"
