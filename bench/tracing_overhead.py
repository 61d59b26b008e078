"""What tracing costs a request: two servers on the instant fake engine, one with `tracing: true`
exporting over OTLP/HTTP to a local collector stub, the same chat requests to each in alternating
rounds (this machine's speed drifts), latency p50/p99 per side.

    .venv/bin/python bench/tracing_overhead.py [--rounds 10] [--per-round 100]
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

KEY = "sk-hp-bench-tracing-0123456789"
BODY = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}


class _Collector(http.server.BaseHTTPRequestHandler):
    spans_bytes = 0

    def do_POST(self) -> None:  # noqa: N802
        _Collector.spans_bytes += len(self.rfile.read(int(self.headers["content-length"])))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(tmp: Path, port: int, env: dict[str, str]) -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "config.yaml"
    config.write_text("models:\n  - {id: fake-chat, version: v1, kind: chat, backend: fake}\ncache_enabled: false\n")
    full = {**os.environ, "HOMEPORT_DATA_DIR": str(tmp / "data"), "HOMEPORT_API_KEY": KEY,
            "HOMEPORT_ACCESS_LOG": "false", **env}  # fmt: skip
    command = [sys.executable, "-m", "homeport", "serve", "--port", str(port), "--config", str(config)]
    process = subprocess.Popen(command, env=full, stdout=(tmp / "log").open("wb"), stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError((tmp / "log").read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=100)
    args = parser.parse_args()
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}/v1/traces"
    with tempfile.TemporaryDirectory() as tmp:
        traced = {"HOMEPORT_TRACING": "true", "HOMEPORT_OTLP_ENDPOINT": endpoint}
        servers = {"off": (18901, _serve(Path(tmp) / "off", 18901, {})),
                   "on": (18902, _serve(Path(tmp) / "on", 18902, traced))}  # fmt: skip
        samples: dict[str, list[float]] = {"off": [], "on": []}
        try:
            with httpx.Client(headers={"authorization": f"Bearer {KEY}"}, timeout=30) as client:
                for port, _ in servers.values():  # warm up
                    for _ in range(20):
                        client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY).raise_for_status()
                for _ in range(args.rounds):
                    for name, (port, _) in servers.items():
                        for _ in range(args.per_round):
                            began = time.perf_counter()
                            client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY).raise_for_status()
                            samples[name].append(1000 * (time.perf_counter() - began))
        finally:
            for _, process in servers.values():
                process.terminate()
                process.wait(timeout=30)
    print(f"\n{args.rounds * args.per_round} chat requests per side (fake engine, 16 tokens), alternating rounds\n")
    print("| tracing | p50 ms | p99 ms |\n|---|---|---|")
    for name, values in samples.items():
        values.sort()
        print(f"| {name} | {statistics.median(values):.2f} | {values[int(0.99 * len(values))]:.2f} |")
    added = statistics.median(samples["on"]) - statistics.median(samples["off"])
    print(f"\np50 added by tracing: {added:.2f} ms; the collector received {_Collector.spans_bytes:,} bytes of spans")


if __name__ == "__main__":
    main()
