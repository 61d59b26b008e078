"""Structured outputs at small budgets: how often the default model's JSON answers and tool-call
arguments parse and validate at `temperature: 1`, per max_tokens, and what the closer costs.

    .venv/bin/python bench/structured_budget.py [--seeds 25] [--base-url URL --api-key KEY]

Without --base-url it starts a server on the default chat model. To compare with code before the
closer (backends/closing.py), run a server from that commit and point --base-url at it (how the
numbers in the README were taken: a `git worktree` of the parent commit, PYTHONPATH=its src).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jsonschema
import openai

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.conformance.test_structured_budget import ASK, NOTE, PERSON, TOOL  # noqa: E402

KEY = "sk-hp-bench-structured-0123456789"


def _serve(tmp: Path) -> tuple[subprocess.Popen, str]:
    config = tmp / "config.yaml"
    config.write_text("load_models: [smollm2-135m-instruct]\ncache_enabled: false\n")
    env = {**os.environ, "HOMEPORT_DATA_DIR": str(tmp / "data"), "HOMEPORT_API_KEY": KEY}
    process = subprocess.Popen([sys.executable, "-m", "homeport", "serve", "--port", "18931", "--config", str(config)],
                               env=env, stdout=(tmp / "log").open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    for _ in range(900):
        try:
            if httpx.get("http://127.0.0.1:18931/readyz", timeout=1).status_code == 200:
                return process, "http://127.0.0.1:18931/v1"
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError((tmp / "log").read_text())


def _json_answer(client: openai.OpenAI, max_tokens: int, seed: int) -> str:
    try:
        out = client.chat.completions.create(
            model="smollm2-135m-instruct", messages=ASK, max_tokens=max_tokens, temperature=1, seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "strict": True,
                                                                    "schema": PERSON}})  # fmt: skip
        jsonschema.validate(json.loads(out.choices[0].message.content), PERSON)
        return "ok"
    except openai.BadRequestError:
        return "400"
    except (ValueError, jsonschema.ValidationError):
        return "bad"


def _tool_call(client: openai.OpenAI, max_tokens: int, seed: int) -> str:
    try:
        out = client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=max_tokens, temperature=1, seed=seed, tools=[TOOL],
            tool_choice="required", messages=[{"role": "user", "content": "Save a long note about sailing knots."}],
        )  # fmt: skip
        (call,) = out.choices[0].message.tool_calls or [None]
        jsonschema.validate(json.loads(call.function.arguments), NOTE)
        return "ok"
    except openai.BadRequestError:
        return "400"
    except (ValueError, TypeError, AttributeError, jsonschema.ValidationError):
        return "bad"


# An object of 2,000 required string properties: the closing of each prefix lists those still missing.
WIDE = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(2000)},
        "required": [f"field_{i}" for i in range(2000)], "additionalProperties": False}  # fmt: skip


def _closer_cost(schema: dict, value: dict) -> float:
    """µs per token to follow a JSON answer and compute its closing after each token."""
    from homeport.backends.closing import Closer
    from homeport.backends.constraints import OutputConstraint

    doc = json.dumps(value).encode()
    rng, pieces, at = random.Random(1), [], 0
    while at < len(doc):
        step = rng.randint(1, 4)
        pieces.append(doc[at : at + step])
        at += step
    closer = Closer(OutputConstraint(answer=schema))
    began = time.perf_counter()
    for piece in pieces:
        closer.feed(piece)
        closer.closing()
    return 1e6 * (time.perf_counter() - began) / len(pieces)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=25)
    parser.add_argument("--base-url")
    parser.add_argument("--api-key", default=KEY)
    args = parser.parse_args()
    process = None
    with tempfile.TemporaryDirectory() as tmp:
        base_url = args.base_url
        if base_url is None:
            process, base_url = _serve(Path(tmp))
        try:
            client = openai.OpenAI(base_url=base_url, api_key=args.api_key, max_retries=0, timeout=300)
            rows = []
            for what, run, budgets in (("JSON answer", _json_answer, (16, 32, 120)),
                                       ("tool call", _tool_call, (40, 64, 120))):  # fmt: skip
                for max_tokens in budgets:
                    with ThreadPoolExecutor(8) as pool:
                        results = list(pool.map(lambda seed, r=run, m=max_tokens: r(client, m, seed),  # type: ignore[misc]
                                                range(args.seeds)))  # fmt: skip
                    rows.append((what, max_tokens, results.count("ok"), results.count("bad"), results.count("400")))
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    print(f"\nsmollm2-135m-instruct, temperature 1, {args.seeds} seeds per row\n")
    print("| output | max_tokens | parse + validate | invalid | 400 (budget too small) |\n|---|---|---|---|---|")
    for what, max_tokens, ok, bad, refused in rows:
        print(f"| {what} | {max_tokens} | {ok}/{args.seeds} | {bad} | {refused} |")
    person = {"name": "x" * 300, "tags": [f"tag {i}" for i in range(60)], "age": 7}  # 376 tokens
    wide = {f"field_{i}": "value" for i in range(300)}  # the first 300 of 2,000 fields (about 2,400 tokens)
    print(f"\nthe closer, µs per token (follow + closing): {_closer_cost(PERSON, person):.1f} on the person answer, "
          f"{_closer_cost(WIDE, wide):.1f} in an object of 2,000 required properties")


if __name__ == "__main__":
    main()
