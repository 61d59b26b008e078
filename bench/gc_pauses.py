"""Python's garbage collector in a serving process: how long its full collections stop the server,
with the heap frozen after start-up (api/server.py `_freeze_heap`) and without (the same code with
`gc.freeze` made a no-op), in one run.

    .venv/bin/python bench/gc_pauses.py [--requests 200]

A full (generation 2) collection walks every object the collector tracks while holding the GIL:
the event loop and the engines' driver thread both wait. For each setting the server runs the
default chat model, streams one request at a time (16 of 128 tokens) and then 8 at a time
(`--requests` of 32 tokens); the server's own collector callbacks record every collection.
Printed per setting: the full collections after the server was ready (count, longest), the
objects a full collection walks at the end and how long one takes there, and the collections of
the younger generations (count, total).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from serving import _run  # noqa: E402

from tests.conftest import API_KEY, Server, _free_port, stop_server, wait_ready  # noqa: E402

MODEL = "smollm2-135m-instruct"


def _serve(record: str, freeze: bool, argv: list[str]) -> None:
    """Run `homeport serve` in this process, recording every collection into `record` at exit."""
    import atexit
    import gc
    import runpy

    if not freeze:
        gc.freeze = lambda: None
    collections: list[tuple[int, float, float]] = []  # generation, wall time at the end, seconds
    began = [0.0]

    def watch(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            collections.append((info["generation"], time.time(), time.perf_counter() - began[0]))

    def dump() -> None:
        tracked, seen = len(gc.get_objects()), list(collections)
        took = time.perf_counter()
        gc.collect()  # what one full collection costs once the loads have run
        took = time.perf_counter() - took
        Path(record).write_text(json.dumps({"collections": seen, "tracked": tracked, "one_full": took}))

    gc.callbacks.append(watch)
    atexit.register(dump)
    sys.argv = ["homeport", *argv]
    runpy.run_module("homeport", run_name="__main__")


def _measure(tmp: Path, freeze: bool, requests: int) -> dict:
    tmp.mkdir()
    port, record = _free_port(), tmp / "collections.json"
    (tmp / "config.yaml").write_text(yaml.safe_dump({"load_models": [MODEL], "cache_enabled": False,
                                                     "access_log": False}))  # fmt: skip
    env = {**os.environ, "HOMEPORT_DATA_DIR": str(tmp / "data"), "HOMEPORT_API_KEY": API_KEY}
    command = [sys.executable, __file__, "--serve", str(record), "--freeze" if freeze else "--no-freeze", "serve",
               "--port", str(port), "--config", str(tmp / "config.yaml")]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=(tmp / "log").open("wb"), stderr=subprocess.STDOUT)
    server = wait_ready(Server(f"http://127.0.0.1:{port}/v1", process, tmp / "data", tmp / "log"))
    ready = time.time()
    url = f"{server.base_url}/chat/completions"
    try:
        for streams, count, tokens in ((1, 16, 128), (8, requests, 32)):
            if asyncio.run(_run(url, API_KEY, MODEL, streams, count, tokens))["failures"]:
                raise RuntimeError(f"requests failed; see {tmp / 'log'}")
    finally:
        process.send_signal(signal.SIGINT)  # a clean exit, so the record is written
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            stop_server(server)
    data = json.loads(record.read_text())
    after = [(gen, seconds) for gen, at, seconds in data["collections"] if at > ready]
    full = [seconds for gen, seconds in after if gen == 2]
    young = [seconds for gen, seconds in after if gen < 2]
    return {"full": len(full), "full_max_ms": 1e3 * max(full, default=0.0), "tracked": data["tracked"],
            "one_full_ms": 1e3 * data["one_full"],
            "young": len(young), "young_ms": 1e3 * sum(young)}  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], sys.argv[3] == "--freeze", sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for freeze in (False, True):
            rows.append((freeze, _measure(Path(tmp) / str(freeze), freeze, args.requests)))
    print("\n| heap after start-up | full collections after ready | longest | objects a full collection walks "
          "| one full collection at the end | younger collections | their total |\n|---|---|---|---|---|---|---|")
    for freeze, r in rows:
        print(f"| {'frozen' if freeze else 'not frozen'} | {r['full']} | {r['full_max_ms']:.1f} ms | {r['tracked']:,} "
              f"| {r['one_full_ms']:.1f} ms "
              f"| {r['young']} | {r['young_ms']:.1f} ms |")  # fmt: skip


if __name__ == "__main__":
    main()
