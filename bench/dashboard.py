"""The dashboard's overview at a million usage records: server time and browser time.

    .venv/bin/python bench/dashboard.py [--records 1000000] [--days 30] [--database sqlite|postgresql]

Writes that many usage events (spread over the last 90 days; 20 projects, 50 keys, 4 models, 2%
errors) through the server's own UsageRecorder, starts `homeport serve` on that data, signs in
with an admin key, then times:
  - server: GET /dashboard (last `--days` days) and /dashboard/usage, over HTTP, median of 20;
  - browser: the overview in Debian's chromium (Playwright), from navigation start to the load
    event, median of 10 (the same page, measured by the browser's Navigation Timing);
  - the peer: the same figures (per-day requests, tokens, cost; error rate; p50/p99 latency)
    computed the naive way, by scanning the raw records of the range in SQL.
Also prints the bytes of JS and CSS the dashboard ships.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import case, func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from homeport.services.platform.usage import UsageEvent, UsageRecorder  # noqa: E402
from homeport.storage.db import Database  # noqa: E402
from homeport.storage.tables import UsageRow  # noqa: E402

DAY = 86400
MODELS = ["smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2", "homeport-moderation"]
STATIC = REPO / "src" / "homeport" / "api" / "dashboard" / "static"


async def fill(db: Database, n: int, now: int) -> float:
    rng = random.Random(7)
    recorder = UsageRecorder(db, batch=2000)
    start, step = now - 90 * DAY, 90 * DAY / n
    began = time.perf_counter()
    for i in range(n):
        model, key = rng.choice(MODELS), rng.randrange(50)
        kind = {"all-minilm-l6-v2": "embeddings", "homeport-moderation": "moderations"}.get(model, "completions")
        recorder.record(UsageEvent(
            kind, f"proj_{key % 20}", f"key_{key}", model, "/v1/chat/completions",
            200 if rng.random() > 0.02 else 500, rng.randrange(10, 500), rng.randrange(0, 200), 0,
            int(rng.lognormvariate(5, 0.8)), input_micro_usd=rng.randrange(0, 50), ts=start + int(i * step),
        ))  # fmt: skip
        if i % 2000 == 1999:
            await recorder.flush()
    await recorder.close()
    return n / (time.perf_counter() - began)


async def naive(db: Database, days: int, now: int) -> float:
    """The peer: the overview's figures from the raw records (what a dashboard without rollups does)."""
    start = (now // DAY - days + 1) * DAY
    t = UsageRow
    ok = t.status < 400
    day = ((t.ts - start) // DAY).label("day")
    began = time.perf_counter()
    async with db.sessions() as session:
        await session.execute(
            select(day, t.model, func.count(), func.sum(case((ok, t.prompt_tokens), else_=0)),
                   func.sum(case((ok, t.completion_tokens), else_=0)),
                   func.sum(case((ok, t.input_micro_usd + t.output_micro_usd), else_=0)))
            .where(t.ts >= start).group_by(day, t.model)
        )  # fmt: skip
        await session.execute(select(t.model, func.count(), func.sum(case((ok, 0), else_=1))).where(t.ts >= start)
                              .group_by(t.model))  # fmt: skip
        latencies = sorted((await session.scalars(select(t.latency_ms).where(t.ts >= start))).all())
        _ = latencies[len(latencies) // 2], latencies[int(0.99 * len(latencies))]
        await session.execute(select(t.key_id, func.sum(t.prompt_tokens + t.completion_tokens)).where(t.ts >= start)
                              .group_by(t.key_id).order_by(func.sum(t.prompt_tokens).desc()).limit(5))  # fmt: skip
    return 1000 * (time.perf_counter() - began)


def serve(data: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = 18000 + secrets.randbelow(2000)
    config = data / "config.yaml"
    config.write_text("models:\n  - {id: fake-chat, version: v1, kind: chat, backend: fake}\n")
    process = subprocess.Popen([sys.executable, "-m", "homeport", "serve", "--port", str(port), "--config",
                                str(config)], env=env, stdout=(data / "server.log").open("wb"),
                               stderr=subprocess.STDOUT)  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{root}/readyz", timeout=2).status_code == 200:
                return process, root
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError((data / "server.log").read_text())


def sign_in(http: httpx.Client, root: str, secret: str) -> None:
    form = http.get(f"{root}/dashboard/sign-in").text
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    answer = http.post(f"{root}/dashboard/sign-in", data={"csrf": token, "key": secret, "next": "/dashboard"})
    assert answer.status_code == 303


def server_ms(http: httpx.Client, url: str, repeat: int = 20) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        assert http.get(url).status_code == 200
        samples.append(1000 * (time.perf_counter() - began))
    return statistics.median(samples), max(samples)


def browser_ms(root: str, secret: str, url: str, repeat: int = 10) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"{root}/dashboard/sign-in")
        page.fill("#key", secret)
        page.click("button[type=submit]")
        page.wait_for_url(f"{root}/dashboard")
        loads, responses = [], []
        for _ in range(repeat):
            page.goto(url, wait_until="load")
            timing = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
            loads.append(timing["loadEventEnd"] - timing["startTime"])
            responses.append(timing["responseEnd"] - timing["requestStart"])
        browser.close()
    return statistics.median(loads), statistics.median(responses)


async def prepare(args: argparse.Namespace, data: Path) -> tuple[str, float, float]:
    """The database with the records: (its URL, events/s written, the peer's median ms)."""
    url = f"sqlite+aiosqlite:///{data / 'homeport.db'}"
    if args.database == "postgresql":
        import asyncpg

        name = f"homeport_bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    db = Database(url)
    await db.migrate()
    now = int(time.time())
    rate = await fill(db, args.records, now)
    peer = statistics.median([await naive(db, args.days, now) for _ in range(3)])
    await db.close()
    return url, rate, peer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="hp-dash-"))
    url, rate, peer = asyncio.run(prepare(args, data))
    env = {**os.environ, "HOMEPORT_DATA_DIR": str(data), "HOMEPORT_DATABASE_URL": url}
    out = subprocess.run([sys.executable, "-m", "homeport", "keys", "create", "--name", "bench", "--admin"], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    secret = out.stdout.strip().splitlines()[-1]
    process, root = serve(data, env)
    try:
        with httpx.Client(timeout=120) as http:
            sign_in(http, root, secret)
            overview = server_ms(http, f"{root}/dashboard?days={args.days}")
            usage = server_ms(http, f"{root}/dashboard/usage?days={args.days}&stack=project_id")
            logs = server_ms(http, f"{root}/dashboard/logs")
            size = len(http.get(f"{root}/dashboard?days={args.days}").content)
        load, response = browser_ms(root, secret, f"{root}/dashboard?days={args.days}")
    finally:
        process.terminate()
        process.wait(timeout=30)
    static = {p.name: p.stat().st_size for p in sorted(STATIC.iterdir())}
    print(f"\n{args.records:,} usage records on {args.database} (written at {rate:,.0f} events/s), "
          f"overview of the last {args.days} days\n")  # fmt: skip
    print("| measure | median ms | max ms |\n|---|---|---|")
    print(f"| server: GET /dashboard (overview) | {overview[0]:.1f} | {overview[1]:.1f} |")
    print(f"| server: GET /dashboard/usage (stacked by project) | {usage[0]:.1f} | {usage[1]:.1f} |")
    print(f"| server: GET /dashboard/logs (latest 100) | {logs[0]:.1f} | {logs[1]:.1f} |")
    print(f"| browser: overview, navigation start to load event | {load:.1f} | |")
    print(f"| browser: overview, request start to response end | {response:.1f} | |")
    print(f"| peer: the overview's queries on the raw records | {peer:.1f} | |")
    print(f"\noverview HTML: {size:,} bytes; static: " + ", ".join(f"{k} {v:,} B" for k, v in static.items()))


if __name__ == "__main__":
    main()
