"""Function calling on the default model: validity, tool_choice obedience, cost of constraints.

    .venv/bin/python bench/tools.py [--json bench/results/tools.json]

50 varied prompts over 8 tools with different argument schemas (enums, nested objects,
arrays, dates, numbers), each sent with one tool_choice (required, a named function, auto or
none). Reports, through Homeport's HTTP API with the official SDK:
  - % of tool calls whose arguments parse as JSON and validate against the tool's schema;
  - % of responses that obeyed tool_choice (required: ≥1 call; named: exactly that function;
    none: no call; auto: either);
  - decoding speed with a grammar vs without: the same prompts and max_tokens as tool calls
    (constrained) and as plain answers (unconstrained), and JSON mode vs free text at a
    fixed length.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jsonschema

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

MODEL = "smollm2-135m-instruct"


def _fn(name: str, description: str, properties: dict, required: list[str]) -> dict:
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema,
                                             "strict": True}}  # fmt: skip


TOOLS = [
    _fn("get_weather", "Current weather for a city",
        {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, ["city", "unit"]),
    _fn("get_time", "Current time in an IANA timezone", {"timezone": {"type": "string"}}, ["timezone"]),
    _fn("search_web", "Search the web", {"query": {"type": "string"}, "max_results": {"type": "integer"}},
        ["query", "max_results"]),
    _fn("create_event", "Add a calendar event",
        {"title": {"type": "string"}, "date": {"type": "string", "format": "date"},
         "attendees": {"type": "array", "items": {"type": "string"}, "maxItems": 5}}, ["title", "date", "attendees"]),
    _fn("convert_units", "Convert a quantity between units",
        {"value": {"type": "number"}, "from_unit": {"type": "string"}, "to_unit": {"type": "string"}},
        ["value", "from_unit", "to_unit"]),
    _fn("send_email", "Send an email",
        {"to": {"type": "string"}, "subject": {"type": "string"}, "body": {"type": "string", "maxLength": 200}},
        ["to", "subject", "body"]),
    _fn("add_todo", "Add an item to the todo list",
        {"task": {"type": "string"}, "priority": {"type": "string", "enum": ["low", "medium", "high"]},
         "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3}}, ["task", "priority", "tags"]),
    _fn("book_table", "Book a restaurant table",
        {"restaurant": {"type": "string"}, "party": {"type": "object", "properties": {
            "size": {"type": "integer"}, "name": {"type": "string"}}, "required": ["size", "name"],
            "additionalProperties": False}, "time": {"type": "string"}}, ["restaurant", "party", "time"]),
]  # fmt: skip
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}

PROMPTS = [
    ("What's the weather like in Paris right now?", "get_weather"),
    ("Is it raining in Tokyo?", "get_weather"),
    ("Temperature in New York in fahrenheit please.", "get_weather"),
    ("Should I take an umbrella in London today?", "get_weather"),
    ("How hot is it in Cairo?", "get_weather"),
    ("What time is it in Sydney?", "get_time"),
    ("Tell me the current time in Berlin.", "get_time"),
    ("Is it morning in Los Angeles now?", "get_time"),
    ("What's the local time in Mumbai?", "get_time"),
    ("Current time for America/Chicago?", "get_time"),
    ("Find recent news about electric cars.", "search_web"),
    ("Search for the best hiking trails in Colorado.", "search_web"),
    ("Look up who won the 2018 World Cup.", "search_web"),
    ("Search the web for easy pasta recipes, 3 results.", "search_web"),
    ("Find articles about quantum computing.", "search_web"),
    ("Schedule a team meeting on 2026-12-03 with Alice and Bob.", "create_event"),
    ("Put my dentist appointment on 2027-01-15 in the calendar.", "create_event"),
    ("Create an event 'Launch party' on 2026-12-20 with Carol.", "create_event"),
    ("Add a calendar entry for the board review on 2027-02-01.", "create_event"),
    ("Book 'Yoga class' on 2026-11-30 in my calendar.", "create_event"),
    ("Convert 10 miles to kilometers.", "convert_units"),
    ("How many grams is 3.5 ounces?", "convert_units"),
    ("Convert 100 fahrenheit to celsius.", "convert_units"),
    ("What is 2 liters in gallons?", "convert_units"),
    ("Convert 5 feet to meters.", "convert_units"),
    ("Email bob@example.com that the report is ready.", "send_email"),
    ("Send an email to alice@example.com saying hello.", "send_email"),
    ("Write to team@example.com: meeting moved to 3pm.", "send_email"),
    ("Email my boss at boss@example.com that I'm sick today.", "send_email"),
    ("Send a thank-you note to carol@example.com.", "send_email"),
    ("Add 'buy milk' to my todo list.", "add_todo"),
    ("Remind me to call mom, high priority.", "add_todo"),
    ("Add a low priority task: clean the garage.", "add_todo"),
    ("Todo: finish the quarterly report, tag it work.", "add_todo"),
    ("Put 'renew passport' on my list as medium priority.", "add_todo"),
    ("Book a table for 4 at Luigi's at 7pm under Smith.", "book_table"),
    ("Reserve dinner for two at Sakura tonight at 8, name Lee.", "book_table"),
    ("Get me a table at The Grill for 6 people at 19:30, name Patel.", "book_table"),
    ("Book a lunch table for 3 at Cafe Rose at noon for Garcia.", "book_table"),
    ("Reserve a table at Blue Moon for 2 at 9pm, name Kim.", "book_table"),
    ("What's the weather in Rome and what time is it there?", "get_weather"),
    ("Find flights to Lisbon.", "search_web"),
    ("Convert 42 kilograms to pounds.", "convert_units"),
    ("Add 'water the plants' as a low priority todo.", "add_todo"),
    ("Tell me a joke about cats.", None),
    ("What is the capital of Canada?", None),
    ("Summarize the plot of Hamlet in one sentence.", None),
    ("Write a haiku about autumn.", None),
    ("How are you today?", None),
    ("Explain photosynthesis briefly.", None),
]


def _choice_for(i: int, expected: str | None):  # -> the tool_choice to send
    if expected is None:
        return "none" if i % 2 else "auto"
    return ["required", {"type": "function", "function": {"name": expected}}, "required", "auto"][i % 4]


def _obeyed(choice, calls: list) -> bool:
    if choice == "none":
        return not calls
    if choice == "required":
        return len(calls) >= 1
    if isinstance(choice, dict):
        return len(calls) == 1 and calls[0].function.name == choice["function"]["name"]
    return True  # auto: calling and answering both obey


def _valid(call) -> bool:
    try:
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
        return True
    except (ValueError, jsonschema.ValidationError):
        return False


def _decode_rate(client, **kwargs) -> float:  # type: ignore[no-untyped-def]
    """Tokens/s after the first token: the role chunk comes right after the first sample,
    so this leaves out prompt evaluation (which tools make long) and grammar setup."""
    first = last = 0.0
    tokens = 0
    stream = client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    for chunk in stream:
        now = time.perf_counter()
        first = first or now
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        else:
            last = now
    return (tokens - 1) / (last - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "tools.json")
    args = parser.parse_args()
    from openai import OpenAI

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"load_models": [MODEL]})
        try:
            client = OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=600)
            rows, constrained, free = [], [], []
            for i, (prompt, expected) in enumerate(PROMPTS):
                choice = _choice_for(i, expected)
                messages = [{"role": "user", "content": prompt}]
                start = time.perf_counter()
                out = client.chat.completions.create(
                    model=MODEL, messages=messages, tools=TOOLS, tool_choice=choice, max_tokens=400, seed=i
                )
                elapsed = time.perf_counter() - start
                calls = out.choices[0].message.tool_calls or []
                rows.append({"prompt": prompt, "tool_choice": choice, "finish": out.choices[0].finish_reason,
                             "calls": [(c.function.name, c.function.arguments) for c in calls],
                             "valid": [_valid(c) for c in calls], "obeyed": _obeyed(choice, calls),
                             "tokens": out.usage.completion_tokens, "seconds": elapsed})  # fmt: skip
                if choice == "required" and calls:
                    n = out.usage.completion_tokens
                    kwargs = {"model": MODEL, "messages": messages, "tools": TOOLS, "max_tokens": n, "seed": i}
                    constrained.append(_decode_rate(client, tool_choice=choice, **kwargs))
                    free.append(_decode_rate(client, tool_choice="none", logit_bias={"2": -100}, **kwargs))
            json_rates, text_rates = [], []
            for i in range(3):
                ask = [{"role": "user", "content": "Describe ten animals in detail as JSON."}]
                kwargs = {"model": MODEL, "messages": ask, "max_tokens": 200, "seed": i}
                json_rates.append(_decode_rate(client, response_format={"type": "json_object"}, **kwargs))
                text_rates.append(_decode_rate(client, logit_bias={"2": -100}, **kwargs))
        finally:
            stop_server(server)

    all_calls = [v for r in rows for v in r["valid"]]
    with_calls = [r for r in rows if r["calls"]]
    auto = [r for r in rows if r["tool_choice"] == "auto"]
    summary = {
        "prompts": len(rows),
        "responses_with_calls": len(with_calls),
        "tool_calls": len(all_calls),
        "arguments_valid_pct": 100 * sum(all_calls) / max(1, len(all_calls)),
        "tool_choice_obeyed_pct": 100 * sum(r["obeyed"] for r in rows) / len(rows),
        "auto_called_pct": 100 * sum(bool(r["calls"]) for r in auto) / max(1, len(auto)),
        "tool_call_tok_s": statistics.median(constrained),
        "same_prompts_unconstrained_tok_s": statistics.median(free),
        "json_mode_tok_s": statistics.median(json_rates),
        "free_text_tok_s": statistics.median(text_rates),
    }
    table = [
        ("prompts / responses with tool calls / calls", f"{len(rows)} / {len(with_calls)} / {len(all_calls)}"),
        ("arguments parse and validate (strict)", f"{summary['arguments_valid_pct']:.0f}%"),
        ("tool_choice obeyed", f"{summary['tool_choice_obeyed_pct']:.0f}%"),
        ("tool_choice=auto that called a tool", f"{summary['auto_called_pct']:.0f}%"),
        ("decode tok/s: tool calls (grammar) vs same prompt free",
         f"{summary['tool_call_tok_s']:.1f} vs {summary['same_prompts_unconstrained_tok_s']:.1f}"
         f" ({summary['tool_call_tok_s'] / summary['same_prompts_unconstrained_tok_s']:.2f}x)"),
        ("decode tok/s: JSON mode vs free text, 200 tokens",
         f"{summary['json_mode_tok_s']:.1f} vs {summary['free_text_tok_s']:.1f}"
         f" ({summary['json_mode_tok_s'] / summary['free_text_tok_s']:.2f}x)"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
