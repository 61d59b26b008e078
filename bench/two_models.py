"""Two chat models in one server: does serving the second slow the first?

    .venv/bin/python bench/two_models.py [--json bench/results/two_models.json]

A server with both default chat models; SmolLM2's single-stream output tok/s (3 requests of 128
tokens, temperature 0.8) before gemma-3-270m has served anything, then after one gemma request.
With one thread per engine, llama.cpp's OpenMP teams made every decode slower once both had run
(backends/llamacpp/batching.py); with one driver thread the two rows should match.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from serving import _run  # noqa: E402

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

SMOL, GEMMA = "smollm2-135m-instruct", "gemma-3-270m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "two_models.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"load_models": [SMOL, GEMMA], "cache_enabled": False, "access_log": False})
        try:
            url = f"{server.base_url}/chat/completions"

            def tok_per_s(model: str, requests: int, max_tokens: int) -> float:
                return asyncio.run(_run(url, API_KEY, model, 1, requests, max_tokens))["output_tok_per_s"]

            tok_per_s(SMOL, 1, 8)  # warm-up
            for rep in range(2):
                rows.append({"when": "before gemma served", "rep": rep, "tok_per_s": tok_per_s(SMOL, 3, 128)})
            tok_per_s(GEMMA, 1, 16)
            for rep in range(2):
                rows.append({"when": "after gemma served", "rep": rep, "tok_per_s": tok_per_s(SMOL, 3, 128)})
        finally:
            stop_server(server)
    print(f"{'SmolLM2, 1 stream':24} {'rep':>3} {'tok/s':>7}")
    for r in rows:
        print(f"{r['when']:24} {r['rep']:>3} {r['tok_per_s']:>7.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
