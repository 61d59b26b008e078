"""What a proxy adds in front of a fast upstream: Homeport against LiteLLM proxy, same stub, same run.

    .venv/bin/python bench/upstream_overhead.py [--litellm PATH] [--requests 400]
        [--json bench/results/upstream_overhead.json]

The upstream is bench/stub_upstream.py (answers at once: 20 streamed chunks + usage). For each
concurrency (1, 16, 64, 200 streams), `--requests` streaming chat requests go (a) straight to the
stub, (b) through Homeport (`backend: upstream`, a real key, usage recorded, cache off) and
(c) through LiteLLM proxy (`litellm --config`, one worker, no database, a master key) — each client reads its
stream to the end. Reported per target: p50/p99 time to the last byte and requests/s; "added" is
the proxy's p50/p99 minus the stub's at the same concurrency. Every server is one process (so
requests/s is per core); the load generator shares the 2 cores, alike for all.

LiteLLM comes from PyPI in a venv of its own (default /tmp/llvenv):
    python3 -m venv /tmp/llvenv && /tmp/llvenv/bin/pip install 'litellm[proxy]'
Without it the LiteLLM column is skipped with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

CONCURRENCY = (1, 16, 64, 200)
BODY = {"model": "stub", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 20}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, headers: dict[str, str] | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


async def _load(url: str, key: str, concurrency: int, total: int) -> dict:
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        queue = list(range(total))

        async def worker() -> None:
            nonlocal failures
            while queue:
                queue.pop()
                began = time.perf_counter()
                try:
                    async with http.stream("POST", url, json=BODY, headers={"Authorization": f"Bearer {key}"}) as r:
                        async for _ in r.aiter_raw():
                            pass
                        if r.status_code != 200:
                            failures += 1
                            continue
                except httpx.HTTPError:
                    failures += 1
                    continue
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    if not latencies:
        return {"p50_ms": None, "p99_ms": None, "rps": 0.0, "failures": failures}
    return {"p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "rps": len(latencies) / elapsed, "failures": failures}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--litellm", type=Path, default=Path("/tmp/llvenv/bin/litellm"))
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "upstream_overhead.json")
    args = parser.parse_args()
    procs: list[subprocess.Popen] = []
    homeport = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            stub_port = _port()
            procs.append(subprocess.Popen([sys.executable, str(REPO / "bench" / "stub_upstream.py"), "--port",
                                           str(stub_port)]))  # fmt: skip
            stub = f"http://127.0.0.1:{stub_port}/v1"
            _wait(f"{stub}/models")
            targets = {"stub (direct)": (f"{stub}/chat/completions", "none")}
            models = [{"id": "stub", "version": "1", "kind": "chat", "backend": "upstream",
                       "upstreams": [{"base_url": stub, "model": "stub"}]}]  # fmt: skip
            homeport = start_server(Path(tmp) / "homeport", {"models": models, "cache_enabled": False,
                                                             "access_log": False})  # fmt: skip
            targets["homeport"] = (f"{homeport.base_url}/chat/completions", API_KEY)
            if args.litellm.exists():
                port = _port()
                config = Path(tmp) / "litellm.yaml"
                master = "sk-litellm-bench-0123456789abcdef0123456789"
                config.write_text(yaml.safe_dump({
                    "model_list": [{"model_name": "stub", "litellm_params": {
                        "model": "openai/stub", "api_base": stub, "api_key": "none"}}],
                    "general_settings": {"master_key": master}}))  # fmt: skip
                log = (Path(tmp) / "litellm.log").open("wb")
                command = [str(args.litellm), "--config", str(config), "--port", str(port), "--num_workers", "1"]
                procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
                _wait(f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
                targets["litellm proxy"] = (f"http://127.0.0.1:{port}/v1/chat/completions", master)
            else:
                print(f"LiteLLM not found at {args.litellm}: its column is skipped (see this script's docstring)")
            for url, key in targets.values():  # warm up every path
                asyncio.run(_load(url, key, 4, 40))
            results: dict[str, dict[int, dict]] = {name: {} for name in targets}
            for c in CONCURRENCY:
                for name, (url, key) in targets.items():
                    results[name][c] = asyncio.run(_load(url, key, c, max(args.requests, 2 * c)))
        finally:
            if homeport is not None:
                stop_server(homeport)
            for p in procs:
                p.terminate()
                p.wait(timeout=20)
    base = results["stub (direct)"]
    print(f"\n{'target':16} {'streams':>7} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10} "
          f"{'req/s':>7} {'fail':>5}")  # fmt: skip
    for name, by_c in results.items():
        for c, r in by_c.items():
            if r["p50_ms"] is None:
                print(f"{name:16} {c:>7} all failed ({r['failures']})")
                continue
            r["added_p50_ms"] = r["p50_ms"] - base[c]["p50_ms"]
            r["added_p99_ms"] = r["p99_ms"] - base[c]["p99_ms"]
            print(f"{name:16} {c:>7} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['added_p50_ms']:>10.2f} "
                  f"{r['added_p99_ms']:>10.2f} {r['rps']:>7.0f} {r['failures']:>5}")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
