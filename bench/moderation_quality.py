"""The moderation model's quality and cost: per-category precision and recall on a labelled set,
latency per input, memory added.

    .venv/bin/python bench/moderation_quality.py [--data bench/data/moderation_eval.jsonl] [--json FILE]

The set (bench/data/moderation_eval.jsonl) is 82 short texts written for this measure: 30 benign
(several sharing words with the categories: "kill a process", "to die for"), 52 harmful, each
labelled with OpenAI's categories as its moderation guide defines them. The peer is the category
set itself: no other local moderation model installs from a registry here. Runs the service in
process on the default models (no HTTP).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from homeport.services.inference.registry import ModelRegistry
from homeport.services.moderations.categories import CATEGORIES, THRESHOLD
from homeport.services.moderations.service import ModerationService
from homeport.settings import Settings

MODEL = "omni-moderation-latest"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


async def main(data: Path, out: Path | None) -> None:
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    settings = Settings(load_models=["all-minilm-l6-v2", "homeport-moderation"])
    registry = ModelRegistry(settings)
    before = _rss_mb()
    await registry.load(lambda *a: None)
    service = ModerationService(registry)
    await service.check(MODEL, ["warm up"])
    loaded = _rss_mb()
    latencies = []
    results = []
    for row in rows:
        start = time.perf_counter()
        (result,) = await service.check(MODEL, [row["text"]])
        latencies.append(1000 * (time.perf_counter() - start))
        results.append(result)
    start = time.perf_counter()
    await service.check(MODEL, [r["text"] for r in rows])
    batched_ms = 1000 * (time.perf_counter() - start) / len(rows)

    table = []
    print(f"{'category':24} {'n':>3} {'flagged':>7} {'precision':>9} {'recall':>6}")
    for c in CATEGORIES:
        truth = [c in r["categories"] for r in rows]
        said = [res.category_scores[c] >= THRESHOLD for res in results]
        tp = sum(t and s for t, s in zip(truth, said, strict=True))
        p = tp / sum(said) if any(said) else float("nan")
        r = tp / sum(truth) if any(truth) else float("nan")
        table.append({"category": c, "n": sum(truth), "flagged": sum(said), "precision": p, "recall": r})
        print(f"{c:24} {sum(truth):>3} {sum(said):>7} {p:>9.2f} {r:>6.2f}")
    benign = [not r["categories"] for r in rows]
    flagged = [res.flagged for res in results]
    false_flags = sum(b and f for b, f in zip(benign, flagged, strict=True))
    missed = sum(not b and not f for b, f in zip(benign, flagged, strict=True))
    latencies.sort()
    summary = {
        "inputs": len(rows), "benign_flagged": false_flags, "benign": sum(benign), "harmful_missed": missed,
        "harmful": len(rows) - sum(benign), "latency_ms_p50": latencies[len(latencies) // 2],
        "latency_ms_p99": latencies[int(0.99 * (len(latencies) - 1))], "batched_ms_per_input": batched_ms,
        "rss_added_mb": loaded - before,
    }  # fmt: skip
    print(f"\nflagged (any category): benign {false_flags}/{sum(benign)} wrongly, harmful {missed}/"
          f"{len(rows) - sum(benign)} missed")  # fmt: skip
    print(f"latency per input: p50 {summary['latency_ms_p50']:.1f} ms, p99 {summary['latency_ms_p99']:.1f} ms; "
          f"{batched_ms:.1f} ms per input in one request of {len(rows)}")  # fmt: skip
    print(f"RSS added by the moderation + embedding models: {summary['rss_added_mb']:.0f} MB")
    if out:
        out.write_text(json.dumps({"categories": table, **summary}, indent=2))
    await registry.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path(__file__).parent / "data" / "moderation_eval.jsonl")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    asyncio.run(main(args.data, args.json))
