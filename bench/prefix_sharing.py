"""Prefix sharing across slots: concurrent requests with one long system prompt, in process.

    .venv/bin/python bench/prefix_sharing.py [--json bench/results/prefix_sharing.json]

8 requests arrive together, each with the same ~500-token system prompt (not in any slot yet) and
its own question; 16 greedy tokens each. Printed per mode: TTFT p50/max, total time, and prompt
tokens the engine evaluated. "copy" is the engine as shipped (one request reads the system
prompt, the others get a copy of its KV stream); "read" turns the copying off, so every slot
reads the system prompt itself (what same-slot-only prefix caching does for a new prompt).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SYSTEM = "You are the harbour master of Port Ellis. Answer with a berth number and one reason. " * 28


def main() -> None:
    from homeport.backends.base import GenerationRequest, Message, SamplingParams, Token
    from homeport.backends.llamacpp import batching
    from homeport.backends.llamacpp.engine import LlamaCppEngine
    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS, EngineSettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "prefix_sharing.json")
    args = parser.parse_args()
    engine = LlamaCppEngine(locate_weights(DEFAULT_MODELS[0], Path("/nonexistent")),
                            settings=EngineSettings(slots=8), context_length=2048)  # fmt: skip
    copy_min = batching._COPY_MIN

    async def one(system: str, i: int, began: float) -> float:
        prompt = engine.apply_chat_template([Message("system", system), Message("user", f"Ship {i} arrives.")])
        request = GenerationRequest(prompt, SamplingParams(max_tokens=16, temperature=0))
        first = None
        async for item in engine.generate(request):
            if first is None and isinstance(item, Token):
                first = time.perf_counter() - began
        return first or float("nan")

    async def run(system: str) -> dict:
        before = engine.stats()
        began = time.perf_counter()
        ttft = await asyncio.gather(*(one(system, i, began) for i in range(8)))
        elapsed = time.perf_counter() - began
        after = engine.stats()
        evaluated = (
            after["batch_tokens"] - before["batch_tokens"] - (after["generated_tokens"] - before["generated_tokens"])
        )
        return {"ttft_p50_ms": 1000 * statistics.median(ttft), "ttft_max_ms": 1000 * max(ttft),
                "total_s": elapsed, "prompt_tokens_evaluated": evaluated}  # fmt: skip

    rows = []
    for rep in range(2):
        for mode in ("copy", "read"):
            batching._COPY_MIN = copy_min if mode == "copy" else 1 << 30  # type: ignore[attr-defined]
            system = f"Log {rep}-{mode}. " + SYSTEM  # a system prompt no slot holds yet
            rows.append({"mode": mode, "rep": rep, **asyncio.run(run(system))})
    prompt_len = len(engine.apply_chat_template([Message("system", SYSTEM), Message("user", "Ship 0 arrives.")]))
    print(f"8 concurrent requests, {prompt_len}-token prompts sharing a system prompt, 16 tokens each")
    print(f"{'mode':6} {'rep':>3} {'TTFT p50 ms':>12} {'TTFT max ms':>12} {'total s':>8} {'prompt tokens read':>19}")
    for r in rows:
        print(f"{r['mode']:6} {r['rep']:>3} {r['ttft_p50_ms']:>12.0f} {r['ttft_max_ms']:>12.0f} {r['total_s']:>8.2f} "
              f"{r['prompt_tokens_evaluated']:>19.0f}")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
