"""Faults, each a scenario with what the client sees and what data survives."""

from __future__ import annotations

import io
import subprocess
import threading
import time
from collections import Counter

import httpx
import openai
import pytest

from tests.conftest import API_KEY, create_key, start_server, stop_server, wait_for_status
from tests.reliability.authz import CONFIG
from tests.reliability.conftest import Throwaway
from tests.spec import validate

AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHAT = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


class _Traffic:
    """Chat calls and file uploads in a loop on a thread, counting what came back."""

    def __init__(self, base_url: str) -> None:
        self.base_url, self.seen, self.bad = base_url, Counter[tuple[str, int]](), list[str]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def wait_for(self, what: str, status: int, more_than: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.seen[(what, status)] <= more_than:
            assert time.monotonic() < deadline, f"never saw {what} → {status} ({dict(self.seen)}, {self.bad[:3]})"
            time.sleep(0.05)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, headers=AUTH, timeout=60) as http:
            while not self._stop.is_set():
                for what, send in (("chat", lambda: http.post("/chat/completions", json=CHAT)),
                                   ("file", lambda: http.post("/files", data={"purpose": "user_data"},
                                                              files={"file": ("a.txt", b"hello")}))):  # fmt: skip
                    try:
                        answer = send()
                    except httpx.HTTPError as exc:
                        self.bad.append(f"{what}: {exc!r}")
                        continue
                    self.seen[(what, answer.status_code)] += 1
                    if answer.status_code != 200:
                        body = answer.json()
                        validate("ErrorResponse", body)
                        if answer.status_code != 503 or body["error"]["code"] != "storage_unavailable":
                            self.bad.append(f"{what}: {answer.status_code} {answer.text[:200]}")
                        elif "retry-after" not in answer.headers:
                            self.bad.append(f"{what}: a 503 without Retry-After")


def _psql(pg: Throwaway, query: str) -> str:
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", "postgres", "-tAc",
                          query], capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return out.stdout.strip()


def test_postgresql_restarted_mid_traffic(tmp_path, throwaway_postgres: Throwaway) -> None:
    """The client sees 503 storage_unavailable (with Retry-After) while the database is down, never
    a 500; the server serves again without a restart; no usage record is lost or doubled; the job
    queue works afterwards."""
    pg = throwaway_postgres
    server = start_server(tmp_path, CONFIG | {"database_url": pg.url})
    try:
        with _Traffic(server.base_url) as traffic:
            traffic.wait_for("file", 200, 5)
            pg.run(pg.stop)
            traffic.wait_for("file", 503, 0)  # the outage is seen
            pg.run(pg.start)
            before = traffic.seen[("file", 200)]
            traffic.wait_for("file", 200, before + 5)  # and it ends, with the same server
        assert traffic.bad == [], traffic.bad[:5]
        assert {status for _, status in traffic.seen} <= {200, 503}
        chats = traffic.seen[("chat", 200)]
        deadline = time.monotonic() + 60
        query = "SELECT count(*) FROM usage_records WHERE endpoint = '/v1/chat/completions' AND status = 200"
        while (recorded := int(_psql(pg, query))) != chats:  # flushed after the outage, each once
            assert recorded < chats and time.monotonic() < deadline, f"{recorded} usage records for {chats} calls"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
        file = client.files.create(file=("n.txt", io.BytesIO(b"after the restart")), purpose="assistants")
        store = client.vector_stores.create(file_ids=[file.id])
        assert wait_for_status(lambda: client.vector_stores.retrieve(store.id), ("completed", "failed")).status == (
            "completed"
        )  # ingestion ran on the job queue, which reconnected
    finally:
        stop_server(server)


@pytest.mark.parametrize("when_down", ["closed", "open"])
def test_redis_stopped_and_restarted(tmp_path, throwaway_redis: Throwaway, when_down: str) -> None:
    """Rate limits live in Redis. While it is down, a key with limits gets 503 storage_unavailable
    with Retry-After (`closed`, the default) or is served unchecked (`open`); once Redis is back,
    limits are checked again, with no restart."""
    redis = throwaway_redis
    server = start_server(tmp_path, CONFIG | {"redis_url": redis.url, "rate_limits_when_redis_down": when_down})
    try:
        limited = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "limited", "--rpm", "100000")
        http = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {limited}"}, timeout=60)
        assert http.post("/chat/completions", json=CHAT).headers["x-ratelimit-limit-requests"] == "100000"
        redis.run(redis.stop)
        down = http.post("/chat/completions", json=CHAT)
        if when_down == "closed":
            assert down.status_code == 503 and down.headers["retry-after"] == "1"
            validate("ErrorResponse", down.json())
            assert down.json()["error"]["code"] == "storage_unavailable"
        else:
            assert down.status_code == 200 and "x-ratelimit-limit-requests" not in down.headers
        redis.run(redis.start)
        deadline = time.monotonic() + 60
        while (back := http.post("/chat/completions", json=CHAT)).status_code != 200:
            assert time.monotonic() < deadline, back.text
            time.sleep(0.2)
        assert back.headers["x-ratelimit-limit-requests"] == "100000"  # checked again
    finally:
        stop_server(server)
