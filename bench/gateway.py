"""What the gateway path (auth, rate limits, budget, usage record) adds to a request.

    .venv/bin/python bench/gateway.py [--requests 300] [--json bench/results/gateway.json]

A Homeport on the instant fake engine, in two modes: embedded (SQLite, in-process limits) and
multi-instance (PostgreSQL + Redis on this machine). Sequential requests, per mode:
  floor     GET /healthz (HTTP + middleware, no auth)
  open key  POST /v1/chat/completions with a key without limits (auth + usage record)
  limited   the same with a key with rpm, tpm and a token budget (+ limits + budget)
Reported: p50/p99 latency of each; "auth+usage" = open − floor; "limits+budget" = limited − open.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import create_key, start_server, stop_server  # noqa: E402

FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"}]
ASK = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def _timed(n: int, call) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = call()
        out.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    return out


def _pct(samples: list[float], q: float) -> float:
    return 1000 * sorted(samples)[min(len(samples) - 1, int(q * len(samples)))]


def run_mode(name: str, env: dict[str, str], n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"models": FAKE}, env=env)
        try:
            key_env = {**env, "HOMEPORT_DATA_DIR": str(server.data_dir)}
            open_key = create_key(key_env, "--name", "open")
            limited = create_key(key_env, "--name", "limited", "--rpm", "1000000", "--tpm", "1000000000",
                           "--budget-tokens", "1000000000")  # fmt: skip
            with httpx.Client(timeout=30) as http:
                url = f"{server.base_url}/chat/completions"
                for _ in range(30):  # warm-up
                    http.post(url, json=ASK, headers={"Authorization": f"Bearer {open_key}"})
                floor = _timed(n, lambda: http.get(f"{server.root}/healthz"))
                opened = _timed(n, lambda: http.post(url, json=ASK, headers={"Authorization": f"Bearer {open_key}"}))
                capped = _timed(n, lambda: http.post(url, json=ASK, headers={"Authorization": f"Bearer {limited}"}))
        finally:
            stop_server(server)
    return {
        "mode": name,
        **{f"{k}_p50_ms": _pct(v, 0.5) for k, v in (("floor", floor), ("open", opened), ("limited", capped))},
        **{f"{k}_p99_ms": _pct(v, 0.99) for k, v in (("floor", floor), ("open", opened), ("limited", capped))},
        "auth_usage_p50_ms": _pct(opened, 0.5) - _pct(floor, 0.5),
        "limits_budget_p50_ms": _pct(capped, 0.5) - _pct(opened, 0.5),
        "mean_open_ms": 1000 * statistics.mean(opened),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "gateway.json")
    args = parser.parse_args()
    rows = [run_mode("embedded (SQLite, in-process)", {}, args.requests)]
    db = f"homeport_bench_{secrets.token_hex(4)}"
    import asyncpg  # PostgreSQL is part of the multi-instance mode

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f"CREATE DATABASE {db}"))
    try:
        env = {"HOMEPORT_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}",
               "HOMEPORT_REDIS_URL": "redis://127.0.0.1:6379/0", "HOMEPORT_REDIS_PREFIX": f"hp-bench-{db}"}  # fmt: skip
        rows.append(run_mode("multi-instance (PostgreSQL + Redis)", env, args.requests))
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))

    print(f"{'mode':<38} {'floor p50/p99':>14} {'open key p50/p99':>17} {'limited p50/p99':>16}"
          f" {'auth+usage':>11} {'limits+budget':>14}")  # fmt: skip
    for r in rows:
        cells = [f"{r[f'{k}_p50_ms']:.2f}/{r[f'{k}_p99_ms']:.2f} ms" for k in ("floor", "open", "limited")]
        print(f"{r['mode']:<38} {cells[0]:>14} {cells[1]:>17} {cells[2]:>16}"
              f" {r['auth_usage_p50_ms']:>8.2f} ms {r['limits_budget_p50_ms']:>11.2f} ms")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
