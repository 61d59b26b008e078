"""The tool-call reader: the same calls whatever the chunking, text kept apart from calls."""

from __future__ import annotations

import pytest

from homeport.services.inference.toolcalls import ArgsDelta, CallStart, Text, ToolCallParser

OUTPUT = (
    "Let me check.<tool_call>\n"
    '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"} }\n</tool_call>\n'
    '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
)


@pytest.mark.parametrize("step", [1, 2, 3, 5, 8, 13, len(OUTPUT)])
def test_chunking_does_not_change_the_result(step: int) -> None:
    parser = ToolCallParser()
    events = []
    for i in range(0, len(OUTPUT), step):
        events += parser.feed(OUTPUT[i : i + step])
    events += parser.finish()
    assert "".join(e.text for e in events if isinstance(e, Text)) == "Let me check."
    assert [(c.name, c.arguments) for c in parser.calls] == [
        ("get_weather", '{"city": "Paris", "unit": "c"}'),
        ("get_time", "{}"),
    ]
    starts = [e for e in events if isinstance(e, CallStart)]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather"), (1, "get_time")]
    for call in parser.calls:  # streamed fragments add up to the final arguments
        assert "".join(e.text for e in events if isinstance(e, ArgsDelta) and e.index == call.index) == call.arguments


def test_plain_text_passes_through_and_partial_tags_are_held() -> None:
    parser = ToolCallParser()
    assert parser.feed("Hello <tool") == [Text("Hello ")]
    assert parser.feed("box>") == [Text("<toolbox>")]
    assert parser.finish() == []
    assert parser.calls == []


def test_unfinished_call_is_dropped() -> None:
    parser = ToolCallParser()
    parser.feed('<tool_call>{"name": "f", "arguments": {"a": ')
    parser.finish()
    assert parser.calls == []


@pytest.mark.parametrize("step", [1, 2, 40])
def test_whitespace_before_a_call_is_not_content(step: int) -> None:
    """The grammar lets a forced call start with a few spaces or newlines: no content comes of them."""
    output = '\n \n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>\n'
    parser = ToolCallParser()
    events = [e for i in range(0, len(output), step) for e in parser.feed(output[i : i + step])] + parser.finish()
    assert [e for e in events if isinstance(e, Text)] == []
    assert [(c.name, c.arguments) for c in parser.calls] == [("f", "{}")]


def test_whitespace_in_and_around_text_is_kept() -> None:
    parser = ToolCallParser()
    pieces = ["\n", "Hello", "\n\n", "world", "\n"]
    events = [e for piece in pieces for e in parser.feed(piece)] + parser.finish()
    assert "".join(e.text for e in events if isinstance(e, Text)) == "\nHello\n\nworld\n"
    only = ToolCallParser()
    assert only.feed("\n\n") == [] and only.finish() == [Text("\n\n")]  # an answer of whitespace stays one
