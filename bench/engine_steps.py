"""Where a continuous-batching step's time goes, in process (no HTTP): decode vs sampling.

    .venv/bin/python bench/engine_steps.py [--json bench/results/engine_steps.json]

The embedded engine (8 slots) generates 128 tokens for 1 and for 8 concurrent requests with
greedy, temperature 0.8, and temperature 0.8 + top_p 0.9 sampling; prints aggregate tok/s and the
mean per-step time in llama_decode, in sampling, and in everything else. Beside each row,
llama.cpp's batched-decode ceiling for that many sequences (`bench/serving.py`'s, greedy, no
scheduler), measured right before and after the row (this machine's speed drifts), and the
engine's share of it: what the engine itself costs, without HTTP. The rows run in two rounds,
the second in reverse order, so a drift in the machine's speed does not fall on one kind of row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

PROMPT = "Write a long story about a lighthouse keeper and a storm. Describe every hour of the night."


def main() -> None:
    from serving import RemoteCeiling

    from homeport.backends.base import GenerationRequest, Message, SamplingParams, Token
    from homeport.backends.llamacpp.engine import LlamaCppEngine
    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS, EngineSettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "engine_steps.json")
    args = parser.parse_args()
    gguf = locate_weights(DEFAULT_MODELS[0], Path("/nonexistent"))
    engine = LlamaCppEngine(gguf, settings=EngineSettings(slots=8), context_length=2048)
    limits = RemoteCeiling(gguf)  # in another process: see bench/serving.py's InProcess
    scheduler = engine.scheduler
    spent = {"decode": 0.0, "sample": 0.0}
    decode, sample = scheduler._decode, scheduler._sample

    def timed_decode() -> None:
        began = time.perf_counter()
        decode()
        spent["decode"] += time.perf_counter() - began

    def timed_sample(seq):  # type: ignore[no-untyped-def]
        began = time.perf_counter()
        sample(seq)
        spent["sample"] += time.perf_counter() - began

    scheduler._decode, scheduler._sample = timed_decode, timed_sample  # type: ignore[method-assign]

    async def one(temperature: float, top_p: float) -> int:
        prompt = engine.apply_chat_template([Message("user", PROMPT)])
        sampling = SamplingParams(max_tokens=128, temperature=temperature, top_p=top_p)
        request = GenerationRequest(prompt, sampling)
        return len([x async for x in engine.generate(request) if isinstance(x, Token)])

    async def run() -> list[dict]:
        rows = []
        kinds = (("greedy", 0.0, 1.0), ("temp 0.8", 0.8, 1.0), ("temp 0.8 top_p 0.9", 0.8, 0.9))
        order = [(kind, streams) for kind in kinds for streams in (1, 8)]
        for round_, (kind, streams) in [(0, x) for x in order] + [(1, x) for x in reversed(order)]:
            label, temperature, top_p = kind
            before = limits.run(streams, 128)
            spent["decode"] = spent["sample"] = 0.0
            steps = scheduler.steps
            began = time.perf_counter()
            tokens = sum(await asyncio.gather(*(one(temperature, top_p) for _ in range(streams))))
            elapsed = time.perf_counter() - began
            steps = scheduler.steps - steps
            limit = (before + limits.run(streams, 128)) / 2
            rows.append({"round": round_, "sampling": label, "streams": streams, "tok_per_s": tokens / elapsed,
                         "ceiling_tok_per_s": limit, "of_ceiling": tokens / elapsed / limit,
                         "decode_ms_per_step": 1000 * spent["decode"] / steps,
                         "sample_ms_per_step": 1000 * spent["sample"] / steps,
                         "other_ms_per_step": 1000 * (elapsed - spent["decode"] - spent["sample"]) / steps,
                         })  # fmt: skip
        return rows

    rows = asyncio.run(run())
    limits.close()
    print(f"{'round':>5} {'sampling':20} {'streams':>7} {'tok/s':>7} {'ceiling':>8} {'share':>6} {'decode ms':>10} "
          f"{'sample ms':>10} {'other ms':>9}  (per step)")  # fmt: skip
    for r in rows:
        print(f"{r['round']:>5} {r['sampling']:20} {r['streams']:>7} {r['tok_per_s']:>7.1f} "
              f"{r['ceiling_tok_per_s']:>8.1f} {r['of_ceiling']:>6.2f} {r['decode_ms_per_step']:>10.1f} "
              f"{r['sample_ms_per_step']:>10.2f} {r['other_ms_per_step']:>9.2f}")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
