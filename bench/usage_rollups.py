"""Usage accounting at scale: writing records, and reporting from hourly rollups vs raw records.

    .venv/bin/python bench/usage_rollups.py [--records 100000,1000000] [--json bench/results/usage_rollups.json]

For each size, writes that many usage events (spread over 30 days; 20 projects, 50 keys, 3
models) through the same UsageRecorder.flush the server uses (batches of 500: raw rows + one
multi-row upsert into the hourly rollups), on SQLite and on PostgreSQL (this machine's). Then
times the usage API's query for those 30 days in daily buckets grouped by model: hour-aligned
(answered from the rollups) and shifted by one second (answered from the raw records) — the
same numbers, two costs. The rollups' cost follows (hours × keys × models), not the request
count, so it stays flat as the records grow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from homeport.services.platform.usage import UsageEvent, UsageRecorder, usage_report  # noqa: E402
from homeport.storage.db import Database  # noqa: E402

DAY = 86400
MODELS = ["smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2"]


async def _fill(db: Database, n: int, start: int) -> float:
    rng = random.Random(7)
    recorder = UsageRecorder(db, batch=500)
    began = time.perf_counter()
    step = 30 * DAY / n
    for i in range(n):
        model = rng.choice(MODELS)
        key = rng.randrange(50)
        recorder.record(UsageEvent(
            "embeddings" if model.startswith("all-") else "completions", f"proj_{key % 20}", f"key_{key}", model,
            "/v1/chat/completions", 200 if rng.random() > 0.02 else 429, rng.randrange(10, 500),
            rng.randrange(0, 200), 0, rng.randrange(20, 900), ts=start + int(i * step),
        ))  # fmt: skip
        if i % 500 == 499:
            await recorder.flush()
    await recorder.close()
    return n / (time.perf_counter() - began)


async def _time_report(db: Database, start: int, repeat: int = 5) -> tuple[float, int]:
    samples, total = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        page = await usage_report(db, "completions", start_time=start, end_time=start + 30 * DAY, bucket_width="1d",
                                  group_by=["model"], project_ids=None, models=None, api_key_ids=None,
                                  limit=None)  # fmt: skip
        samples.append(1000 * (time.perf_counter() - began))
        total = sum(r["num_model_requests"] for b in page["data"] for r in b["results"])
    return statistics.median(samples), total


async def run(name: str, url: str, n: int) -> dict:
    db = Database(url)
    await db.migrate()
    start = (int(time.time()) // DAY - 40) * DAY
    rate = await _fill(db, n, start)
    rolled_ms, rolled_total = await _time_report(db, start)
    raw_ms, raw_total = await _time_report(db, start + 1)
    assert rolled_total == raw_total or abs(rolled_total - raw_total) <= 1, (rolled_total, raw_total)
    await db.close()
    return {"database": name, "records": n, "write_events_per_s": round(rate), "report_rollups_ms": round(rolled_ms, 1),
            "report_raw_ms": round(raw_ms, 1), "requests_counted": rolled_total}  # fmt: skip


async def _pg_database() -> tuple[str, str] | None:
    try:
        import asyncpg

        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test", timeout=3)
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL not reachable, skipped: {exc}")
        return None
    name = f"homeport_bench_{secrets.token_hex(4)}"
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def _drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test", timeout=3)
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "usage_rollups.json")
    args = parser.parse_args()
    results = []
    for n in (int(x) for x in args.records.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(asyncio.run(run("sqlite", f"sqlite+aiosqlite:///{tmp}/usage.db", n)))
        pg = asyncio.run(_pg_database())
        if pg is not None:
            try:
                results.append(asyncio.run(run("postgresql", pg[1], n)))
            finally:
                asyncio.run(_drop(pg[0]))
    header = ("database", "records", "write ev/s", "report: rollups", "report: raw", "speedup")
    print("\n{:12} {:>9} {:>11} {:>16} {:>12} {:>8}".format(*header))
    for r in results:
        speedup = r["report_raw_ms"] / max(r["report_rollups_ms"], 0.01)
        print(f"{r['database']:12} {r['records']:>9} {r['write_events_per_s']:>11} {r['report_rollups_ms']:>13.1f} ms"
              f" {r['report_raw_ms']:>9.1f} ms {speedup:>7.0f}x")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
