"""Fixtures: real Homeport servers on free loopback ports, driven by the official SDK."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import yaml

API_KEY = "sk-hp-test-key-0123456789"
T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen
    data_dir: Path
    log: Path

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, config: dict, env: dict[str, str] | None = None, timeout: float = 180) -> Server:
    """Start `homeport serve` in a subprocess and wait for /readyz."""
    return wait_ready(launch_server(tmp, config, env), timeout)


def launch_server(tmp: Path, config: dict, env: dict[str, str] | None = None) -> Server:
    """Start `homeport serve` in a subprocess; returns at once (see wait_ready)."""
    port = _free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    full_env = {
        **os.environ,
        "HOMEPORT_DATA_DIR": str(tmp / "data"),
        "HOMEPORT_API_KEY": API_KEY,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log = tmp / "server.log"
    cmd = [sys.executable, "-m", "homeport", "serve", "--port", str(port), "--config", str(tmp / "config.yaml")]
    process = subprocess.Popen(cmd, env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    return Server(f"http://127.0.0.1:{port}/v1", process, tmp / "data", log)


def wait_ready(server: Server, timeout: float = 180) -> Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"homeport exited early:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.root}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.process.kill()
    raise RuntimeError(f"homeport not ready after {timeout}s:\n{server.log.read_text()}")


def start_llama_cpp_server(gguf: Path, log: Path, *args: str, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """llama-cpp-python's own OpenAI-compatible server on `gguf`; returns (process, base URL) once it answers."""
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"llama_cpp.server not ready after {timeout}s")


def homeport_cli(env: dict[str, str], *args: str) -> str:
    """Run `homeport ARGS` with extra environment (e.g. HOMEPORT_DATA_DIR); returns stdout."""
    out = subprocess.run([sys.executable, "-m", "homeport", *args], env={**os.environ, **env},
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout


def create_key(env: dict[str, str], *args: str) -> str:
    """`homeport keys create ARGS`; returns the secret (its last line)."""
    return homeport_cli(env, "keys", "create", *args).strip().splitlines()[-1]


def wait_for_status(fetch: Callable[[], T], done: tuple[str, ...], timeout: float = 120) -> T:
    """Poll `fetch()` until its `.status` is one of `done` (a generous deadline, never a fixed wait)."""
    deadline = time.monotonic() + timeout
    while True:
        found = fetch()
        if found.status in done:  # type: ignore[attr-defined]
            return found
        assert time.monotonic() < deadline, f"still {found.status}"  # type: ignore[attr-defined]
        time.sleep(0.1)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Homeport on the real default models, with `gpt-4o-mini` aliased to the default chat model."""
    # No response cache here: the model tests must reach the engine (same seed twice is a real test).
    config = {"aliases": {"gpt-4o-mini": "smollm2-135m-instruct"}, "max_request_bytes": 2_000_000,
              "cache_enabled": False}  # fmt: skip
    srv = start_server(tmp_path_factory.mktemp("homeport"), config)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def client(server: Server):  # -> openai.OpenAI
    from openai import OpenAI

    with OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture
async def aclient(server: Server):  # -> openai.AsyncOpenAI
    from openai import AsyncOpenAI

    async with AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture
def replica_env() -> Iterator[dict[str, str]]:
    """Environment for replicas sharing a throwaway PostgreSQL database (dropped after the test)
    and a Redis key prefix of their own."""
    asyncpg = pytest.importorskip("asyncpg")
    name = f"homeport_replicas_{secrets.token_hex(4)}"

    async def sql(query: str) -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test", timeout=3)
        try:
            await conn.execute(query)
        finally:
            await conn.close()

    try:
        asyncio.run(sql(f"CREATE DATABASE {name}"))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    yield {"HOMEPORT_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}",
           "HOMEPORT_REDIS_URL": "redis://127.0.0.1:6379/0", "HOMEPORT_REDIS_PREFIX": name}  # fmt: skip
    asyncio.run(sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
