"""Homeport as a gateway at 64 and 200 streams, with a load generator that is not the bottleneck.

    .venv/bin/python bench/gateway_wrk.py [--seconds 15]

bench/upstream_overhead.py's Python client (httpx, one event loop) shares the 2 cores with the
servers: there, even the stub alone falls from 741 req/s at 16 streams to 76 at 200, so its
numbers at 200 streams measure the client. Here `wrk` (C, Debian's package; `apt-get install
wrk`) sends the same streaming chat request (20 chunks + usage from bench/stub_upstream.py) over
64 and 200 open connections, to the stub directly and through Homeport (`backend: upstream`, a
real key, usage recorded, cache off). Prints requests/s and latency p50/p99 as wrk measures them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from upstream_overhead import BODY, _port, _wait  # noqa: E402

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

_SCRIPT = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def _wrk(url: str, connections: int, seconds: int, script: Path) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"rps": rps, "p50_ms": percentile("50"), "p99_ms": percentile("99"),
            "non_2xx": int(errors.group(1)) if errors else 0}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        stub_port = _port()
        stub = subprocess.Popen([sys.executable, str(REPO / "bench" / "stub_upstream.py"), "--port", str(stub_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        _wait(f"http://127.0.0.1:{stub_port}/v1/models")
        models = [{"id": "stub", "version": "1", "kind": "chat", "backend": "upstream", "health_check_s": None,
                   "upstreams": [{"base_url": f"http://127.0.0.1:{stub_port}/v1", "timeout_s": 60}]}]  # fmt: skip
        homeport = start_server(Path(tmp) / "homeport", {"models": models, "cache_enabled": False,
                                                         "access_log": False})  # fmt: skip
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT.format(body=json.dumps(BODY), key=API_KEY))
        rows = []
        try:
            httpx.post(f"{homeport.base_url}/chat/completions", json=BODY,
                       headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30).raise_for_status()  # fmt: skip
            for name, url in (("stub (direct)", f"http://127.0.0.1:{stub_port}/v1/chat/completions"),
                              ("homeport", f"{homeport.base_url}/chat/completions")):  # fmt: skip
                for connections in (64, 200):
                    rows.append((name, connections, _wrk(url, connections, args.seconds, script)))
                    time.sleep(1)
        finally:
            stop_server(homeport)
            stub.terminate()
            stub.wait(timeout=10)
    print(f"\nwrk, 2 threads, {args.seconds} s per row, streaming chat (20 chunks + usage)\n")
    print("| target | connections | req/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|---|")
    for name, connections, r in rows:
        print(f"| {name} | {connections} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['non_2xx']} |")
    homeport_rows = {c: r["rps"] for name, c, r in rows if name == "homeport"}
    print(f"\nHomeport at 200 / at 64: {homeport_rows[200] / homeport_rows[64]:.2f}")


if __name__ == "__main__":
    main()
