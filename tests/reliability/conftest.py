"""Servers the fault tests may break: a throwaway PostgreSQL cluster and a throwaway Redis, each
on its own port and data directory (the machine's shared servers are never touched)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clusters import _as_postgres
from tests.conftest import _free_port


@dataclass
class Throwaway:
    url: str
    port: int
    start: list[str]
    stop: list[str]

    def run(self, command: list[str]) -> None:
        subprocess.run(command, check=True, capture_output=True, timeout=120)


@pytest.fixture
def throwaway_postgres() -> Iterator[Throwaway]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        pytest.skip("PostgreSQL's server binaries (pg_ctl, initdb) are not installed")
    bin_dir = Path(found[-1]).parent
    home = Path(tempfile.mkdtemp(prefix="homeport-pg-"))
    data = home / "data"
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    port = _free_port()
    subprocess.run(_as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"),
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w"]
    start = _as_postgres(*pg_ctl, "-o", options, "-l", str(home / "log"), "start")
    stop = _as_postgres(*pg_ctl, "-m", "fast", "stop")
    server = Throwaway(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", port, start, stop)
    server.run(start)
    try:
        yield server
    finally:
        subprocess.run(stop, capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def throwaway_redis() -> Iterator[Throwaway]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="homeport-redis-"))
    start = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(home), "--daemonize", "yes", "--pidfile", str(home / "pid")]  # fmt: skip
    stop = ["redis-cli", "-p", str(port), "shutdown", "nosave"]
    server = Throwaway(f"redis://127.0.0.1:{port}/0", port, start, stop)
    server.run(start)
    deadline = time.monotonic() + 30
    while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() != b"PONG":
        assert time.monotonic() < deadline, "the throwaway Redis never answered"
        time.sleep(0.1)
    try:
        yield server
    finally:
        subprocess.run(stop, capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)
