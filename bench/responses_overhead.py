"""What /v1/responses adds over /v1/chat/completions for the same request, and how fast a deep
`previous_response_id` chain is read back.

    .venv/bin/python bench/responses_overhead.py [--requests 200] [--json bench/results/responses_overhead.json]

A Homeport on the instant fake engine (so the numbers are Homeport's own work, not the model's):
sequential requests, the same prompt through both endpoints, non-streamed (latency) and streamed
(time to the first content event). Then a chain of 20 responses, each continuing the last, and
the 21st request's state lookup — the one read of the 20th response's context — timed in process
on SQLite and, when it answers on 127.0.0.1:5432, PostgreSQL.
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

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"}]
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
RESPONSE = {"model": "fake-chat", "input": "hi", "max_output_tokens": 16}


def _pct(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return round(statistics.median(values) * 1000, 2), round(values[int(0.99 * (len(values) - 1))] * 1000, 2)


def _latency(http: httpx.Client, path: str, body: dict, n: int) -> list[float]:  # type: ignore[type-arg]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        http.post(path, json=body).raise_for_status()
        out.append(time.perf_counter() - start)
    return out


def _first_content(http: httpx.Client, path: str, body: dict, n: int, marker: bytes) -> list[float]:  # type: ignore[type-arg]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        with http.stream("POST", path, json=body | {"stream": True}) as r:
            seen = False
            for line in r.iter_lines():  # read to the end: the next request starts on an idle server
                if not seen and marker in line.encode():
                    out.append(time.perf_counter() - start)
                    seen = True
    return out


def bench_http(tmp: Path, n: int) -> dict:  # type: ignore[type-arg]
    server = start_server(tmp, {"models": FAKE, "cache_enabled": False})
    try:
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as h:
            for path, body in (("/chat/completions", CHAT), ("/responses", RESPONSE)):  # warm up
                _latency(h, path, body, 10)
            rows = {
                "chat": _latency(h, "/chat/completions", CHAT, n),
                "responses": _latency(h, "/responses", RESPONSE, n),
                "chat_ttft": _first_content(h, "/chat/completions", CHAT, n, b'"content":"'),
                "responses_ttft": _first_content(h, "/responses", RESPONSE, n, b"response.output_text.delta"),
            }
            last = None
            for i in range(20):
                body = RESPONSE | {"input": f"turn {i}"} | ({"previous_response_id": last} if last else {})
                last = h.post("/responses", json=body).json()["id"]
    finally:
        stop_server(server)
    return {k: _pct(v) for k, v in rows.items()} | {"chain_head": last, "data_dir": str(server.data_dir)}


async def bench_lookup(url: str, n: int, setup_from: Path | None = None) -> tuple[float, float]:
    """The 20-deep chain's state read: ResponseStore.context of its last response."""
    from homeport.services.responses.store import ResponseStore
    from homeport.storage.db import Database

    db = Database(url)
    await db.migrate()
    store = ResponseStore(db)
    context: list = []
    last = ""
    for i in range(20):  # a chain as the server stores it: each row holds its whole context
        last = f"resp_bench{i:02d}{secrets.token_hex(8)}"
        turn = [{"type": "message", "id": f"msg_{last}_{k}", "role": role, "status": "completed",
                 "content": [{"type": "input_text", "text": "word " * 40}]}
                for k, role in enumerate(("user", "assistant"))]  # fmt: skip
        context = context + turn
        body = {"id": last, "status": "completed", "created_at": int(time.time()), "output": turn[1:]}
        await store.save(None, body, turn[:1], context)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        assert len(await store.context(None, last, "previous_response_id")) == 40
        times.append(time.perf_counter() - start)
    await db.close()
    return _pct(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "responses_overhead.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        http = bench_http(Path(tmp), args.requests)
        lookups = {"sqlite": asyncio.run(bench_lookup(f"sqlite+aiosqlite:///{tmp}/chain.db", args.requests))}
    try:
        import asyncpg

        name = f"homeport_bench_{secrets.token_hex(4)}"

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test", timeout=3)
            await conn.execute(sql)
            await conn.close()

        asyncio.run(admin(f"CREATE DATABASE {name}"))
        try:
            url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
            lookups["postgresql"] = asyncio.run(bench_lookup(url, args.requests))
        finally:
            asyncio.run(admin(f"DROP DATABASE {name} WITH (FORCE)"))
    except (ImportError, OSError) as exc:
        print(f"(PostgreSQL skipped: {exc})")
    print(f"\n{'':28} {'p50 ms':>8} {'p99 ms':>8}")
    labels = {"chat": "chat, non-streamed", "responses": "responses, non-streamed",
              "chat_ttft": "chat, first content", "responses_ttft": "responses, first content"}  # fmt: skip
    for key, label in labels.items():
        print(f"{label:28} {http[key][0]:>8} {http[key][1]:>8}")
    for label, a, b in (("added, non-streamed", "responses", "chat"), ("added, first content", "responses_ttft",
                                                                        "chat_ttft")):  # fmt: skip
        print(f"{label:28} {round(http[a][0] - http[b][0], 2):>8} {round(http[a][1] - http[b][1], 2):>8}")
    for db, (p50, p99) in lookups.items():
        print(f"{'20-deep lookup, ' + db:28} {p50:>8} {p99:>8}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"http_ms": {k: v for k, v in http.items() if isinstance(v, tuple)},
                                     "lookup_ms": lookups}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
