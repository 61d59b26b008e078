"""The Batch API against the same requests sent live: output tokens per second on the real model;
then what a running batch does to interactive requests' time to first token.

    .venv/bin/python bench/batch_throughput.py [--lines 1000] [--tokens 64] [--probes 40] [--rounds 5]

One Homeport on the default chat model. Live: the requests sent over HTTP by 8 concurrent clients
(the engine's slots). Batch: the same requests as JSONL files through /v1/batches, timed from
create to completed. The two alternate in rounds (lines/rounds requests each), summed.
Reported: requests, output tokens (from each answer's usage), seconds, tok/s.
TTFT: streamed interactive requests, one after another, on the idle server and while a batch of
the same lines runs; p50/p99 of each, and how many batch lines gave up their slot (preemptions).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

MODEL = "smollm2-135m-instruct"


def _body(i: int, tokens: int) -> dict:  # type: ignore[type-arg]
    return {"model": MODEL, "max_tokens": tokens, "temperature": 0.8,
            "messages": [{"role": "user", "content": f"Write a long story about lighthouse number {i}."}]}  # fmt: skip


def live(base: str, n: int, tokens: int) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {API_KEY}"}

    def one(i: int) -> int:
        r = httpx.post(f"{base}/chat/completions", json=_body(i, tokens), headers=headers, timeout=600)
        return int(r.json()["usage"]["completion_tokens"])

    start = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        total = sum(pool.map(one, range(n)))
    return total, time.perf_counter() - start


def _start_batch(http: httpx.Client, n: int, tokens: int) -> tuple[str, float]:
    """Upload `n` chat lines and create their batch; (batch id, when it was created)."""
    lines = "\n".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                                  "body": _body(i, tokens)}) for i in range(n))  # fmt: skip
    uploaded = http.post("/files", files={"file": ("b.jsonl", lines.encode())}, data={"purpose": "batch"})
    start = time.perf_counter()
    batch_id = http.post("/batches", json={"input_file_id": uploaded.json()["id"], "endpoint": "/v1/chat/completions",
                                           "completion_window": "24h"}).json()["id"]  # fmt: skip
    return batch_id, start


def batch(base: str, n: int, tokens: int) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as http:
        batch_id, start = _start_batch(http, n, tokens)
        while (state := http.get(f"/batches/{batch_id}").json())["status"] not in ("completed", "failed", "cancelled"):
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        text = http.get(f"/files/{state['output_file_id']}/content").text
    total = sum(json.loads(x)["response"]["body"]["usage"]["completion_tokens"] for x in text.splitlines())
    return total, seconds


def _ttft(base: str) -> float:
    body = {"model": MODEL, "max_tokens": 8, "stream": True,
            "messages": [{"role": "user", "content": "Say hello to the harbour master."}]}  # fmt: skip
    start = time.perf_counter()
    first = None
    with httpx.stream("POST", f"{base}/chat/completions", json=body, timeout=600,
                      headers={"Authorization": f"Bearer {API_KEY}"}) as r:  # fmt: skip
        for line in r.iter_lines():  # read to the end: the request is whole, as a client's
            if first is None and line.startswith("data: ") and '"content"' in line:
                first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("the stream carried no content")
    return first


def probes(base: str, n: int, while_batch: str | None = None) -> list[float]:
    """`n` TTFTs, one request after another; with `while_batch`, only those started while it runs."""
    found: list[float] = []
    headers = {"Authorization": f"Bearer {API_KEY}"}
    while len(found) < n:
        if while_batch and httpx.get(f"{base}/batches/{while_batch}", headers=headers).json()["status"] not in (
            "validating", "in_progress"):  # fmt: skip
            break
        found.append(_ttft(base))
        time.sleep(0.2)
    return found


def batch_with_probes(base: str, n: int, tokens: int, count: int) -> tuple[list[float], float]:
    """Start a batch, probe TTFT while it runs; (TTFTs, preemptions)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=base, headers=headers, timeout=600) as http:
        batch_id, _ = _start_batch(http, n, tokens)
        while http.get(f"/batches/{batch_id}").json()["status"] == "validating":
            time.sleep(0.1)
        time.sleep(2)  # the engine's slots fill
        found = probes(base, count, batch_id)
        http.post(f"/batches/{batch_id}/cancel")
        metrics = http.get(base.removesuffix("/v1") + "/metrics").text
    preempted = sum(float(x.split()[-1]) for x in metrics.splitlines() if x.startswith("homeport_engine_preemptions"))
    return found, preempted


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5, help="live and batch alternate, lines/rounds each time")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "batch_throughput.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"cache_enabled": False, "load_models": [MODEL]})
        try:
            live(server.base_url, 16, args.tokens)  # warm up
            # Alternating rounds: whatever else the machine does weighs on both sides alike.
            per = args.lines // args.rounds
            done = {"live, 8 streams": (0, 0.0), "batch": (0, 0.0)}
            for _ in range(args.rounds):
                for name, run in (("live, 8 streams", live), ("batch", batch)):
                    tokens, seconds = run(server.base_url, per, args.tokens)
                    done[name] = (done[name][0] + tokens, done[name][1] + seconds)
                    print(f"{name}: {tokens} tokens in {seconds:.1f} s", flush=True)
            rows = done
            idle = probes(server.base_url, args.probes)
            busy, preempted = batch_with_probes(server.base_url, 200, args.tokens, args.probes)
        finally:
            stop_server(server)
    print(f"\n{'':16} {'requests':>8} {'tokens':>8} {'seconds':>8} {'tok/s':>8}")
    for name, (tokens, seconds) in rows.items():
        print(f"{name:16} {args.lines:>8} {tokens:>8} {seconds:>8.1f} {tokens / seconds:>8.1f}")
    print(f"\n{'interactive TTFT':24} {'n':>4} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in (("idle", idle), ("while a batch runs", busy)):
        print(f"{name:24} {len(values):>4} {1000 * _pct(values, 0.5):>8.0f} {1000 * _pct(values, 0.99):>8.0f}")
    print(f"batch lines preempted for them: {preempted:.0f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**{k: {"tokens": t, "seconds": s} for k, (t, s) in rows.items()},
                                     "ttft_idle_s": idle, "ttft_during_batch_s": busy,
                                     "preemptions": preempted}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
