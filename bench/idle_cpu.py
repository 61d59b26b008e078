"""What an idle server costs: CPU of its event-loop thread and of the whole process per second,
with no requests (background work only: the job queue's polling, model sync, usage flushes,
uvicorn's ticks). At one stream every millisecond of it is taken from llama.cpp's threads.
Then the unit of that work: one SQLite transaction (the job queue's claim of the next job, on an
empty queue), in wall time and event-loop CPU.

    .venv/bin/python bench/idle_cpu.py [--seconds 30] [--rounds 3]

The server runs the fake chat model (no engine threads), SQLite, the default job workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.conftest import start_server, stop_server  # noqa: E402


def _cpu_s(pid: int, tid: int | None = None) -> float:
    stat = Path(f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _claim_ms(tmp: Path, count: int = 300) -> tuple[float, float]:
    from homeport.storage.db import Database
    from homeport.storage.jobs import SqliteQueue

    db = Database(f"sqlite+aiosqlite:///{tmp / 'claim.db'}")
    await db.migrate()
    queue = SqliteQueue(db.engine, "bench")
    for _ in range(30):
        await queue._claim()
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(count):
        await queue._claim()
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    await db.close()
    return 1e3 * wall / count, 1e3 * cpu / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fake = {"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"}
    print("\n| round | event-loop thread | whole process |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "idle", {"models": [fake], "load_models": ["fake-chat"], "access_log": False})
        try:
            pid = server.process.pid
            time.sleep(5)  # past start-up
            for round_ in range(1, args.rounds + 1):
                loop, process, began = _cpu_s(pid, pid), _cpu_s(pid), time.monotonic()
                time.sleep(args.seconds)
                took = time.monotonic() - began
                print(f"| {round_} | {1e3 * (_cpu_s(pid, pid) - loop) / took:.1f} ms/s | "
                      f"{1e3 * (_cpu_s(pid) - process) / took:.1f} ms/s |")  # fmt: skip
        finally:
            stop_server(server)
        wall_ms, cpu_ms = asyncio.run(_claim_ms(Path(tmp)))
    print(f"\none SQLite transaction (the queue's claim): {wall_ms:.2f} ms wall, {cpu_ms:.2f} ms event-loop CPU")


if __name__ == "__main__":
    main()
