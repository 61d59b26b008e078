"""Faults, each a scenario with what the client sees and what data survives."""

from __future__ import annotations

import io
import socket
import sqlite3
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

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
        # "open" answers 200 unchecked until a request reaches the restarted Redis, so wait for the header
        deadline = time.monotonic() + 60
        while (back := http.post("/chat/completions", json=CHAT)).status_code != 200 or (
            "x-ratelimit-limit-requests" not in back.headers
        ):
            assert time.monotonic() < deadline, (back.status_code, back.text)
            time.sleep(0.2)
        assert back.headers["x-ratelimit-limit-requests"] == "100000"  # checked again
    finally:
        stop_server(server)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 6 MB tmpfs for the data directory (needs root to mount; skipped otherwise)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_on_the_data_directory(tmp_path, small_disk: Path) -> None:
    """Uploads into a full disk get 507 insufficient_storage, never a 500 or a half-stored file; the
    database stays sound; freeing space makes uploads work again."""
    server = start_server(tmp_path / "server", CONFIG, env={"HOMEPORT_DATA_DIR": str(small_disk)})
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    piece = b"x" * 512 * 1024
    stored, refused = [], None
    try:
        for i in range(40):  # 20 MB into 6 MB
            try:
                stored.append(client.files.create(file=(f"f{i}.txt", io.BytesIO(piece)), purpose="user_data").id)
            except openai.APIStatusError as exc:
                refused = exc
                break
        assert refused is not None and refused.status_code == 507, refused
        validate("ErrorResponse", refused.response.json())
        assert refused.code == "insufficient_storage"
        listed = [f.id for f in client.files.list(limit=100).data]
        assert sorted(listed) == sorted(stored)  # nothing half-stored is listed
        for file_id in stored[:3]:
            assert client.files.content(file_id).read() == piece
        for file_id in stored[: len(stored) // 2]:
            client.files.delete(file_id)
        assert client.files.create(file=("after.txt", io.BytesIO(piece)), purpose="user_data").bytes == len(piece)
    finally:
        stop_server(server)
    with sqlite3.connect(small_disk / "homeport.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_kill_9_during_vector_store_ingestion(tmp_path) -> None:
    """The replica dies while embedding a large file; after restart the job is run again and the
    file's chunks are stored once each (the write is one transaction, claimed by status)."""
    config = {"load_models": ["all-minilm-l6-v2"], "vector_store_model": "all-minilm-l6-v2", "cache_enabled": False,
              "run_heartbeat_s": 3}  # fmt: skip
    words = "harbour lantern copper meadow violet engine thunder paper garden silver river stone".split()
    text = "\n".join(f"Line {i}: " + " ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(900))
    data = {"HOMEPORT_DATA_DIR": str(tmp_path / "data")}
    server = start_server(tmp_path / "a", config, env=data)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
        file = client.files.create(file=("long.txt", io.BytesIO(text.encode())), purpose="assistants")
        store = client.vector_stores.create(file_ids=[file.id])
        active = "SELECT count(*) FROM job_queue WHERE status = 'active'"
        deadline = time.monotonic() + 60
        while _sqlite(tmp_path / "data", active) == 0:  # a worker has taken the job and is embedding
            assert time.monotonic() < deadline, "the ingestion job never started"
            time.sleep(0.05)
        assert client.vector_stores.retrieve(store.id).status == "in_progress"  # embedding takes many seconds
        server.process.kill()  # SIGKILL mid-ingestion
        server.process.wait()
    finally:
        stop_server(server)
    server = start_server(tmp_path / "b", config, env=data)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
        done = wait_for_status(lambda: client.vector_stores.retrieve(store.id), ("completed", "failed"), timeout=600)
        assert done.status == "completed" and done.file_counts.completed == 1
    finally:
        stop_server(server)
    with sqlite3.connect(tmp_path / "data" / "homeport.db") as db:
        seqs = [row[0] for row in db.execute("SELECT seq FROM chunks WHERE vector_store_id = ?", (store.id,))]
    assert len(seqs) > 20 and sorted(seqs) == list(range(len(seqs)))  # each chunk once


def _sqlite(data_dir: Path, query: str) -> int:
    with sqlite3.connect(data_dir / "homeport.db", timeout=30) as db:
        return int(db.execute(query).fetchone()[0])


class _BadUpstream:
    """An 'OpenAI-compatible' server on loopback that misbehaves in one way, on every request:
    `hang` (never answers), `reset` (drops the connection), `garbage` (200 with a body that is not
    JSON, or a stream of non-JSON events)."""

    def __init__(self, how: str) -> None:
        self.how = how
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(65536)
        if self.how == "hang":
            self._held.append(conn)
            return
        if self.how == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            return
        streamed = b'"stream": true' in request or b'"stream":true' in request
        body = b"data: {not json\n\n" if streamed else b"<html>upstream proxy error</html>"
        kind = b"text/event-stream" if streamed else b"application/json"
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: " + kind + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        conn.close()

    def close(self) -> None:
        self._listener.close()
        for conn in self._held:
            conn.close()


def test_an_upstream_that_hangs_resets_or_answers_garbage(tmp_path) -> None:
    """Each answers the client with 503 engine_overloaded and Retry-After (after the deployment's
    timeout for a hang), in OpenAI's error shape, for plain and streamed calls; never a 500."""
    bad = {how: _BadUpstream(how) for how in ("hang", "reset", "garbage")}
    models = [{"id": f"{how}-chat", "version": "v1", "kind": "chat", "backend": "upstream", "retries": 0,
               "upstreams": [{"base_url": up.base_url, "timeout_s": 2}]} for how, up in bad.items()]  # fmt: skip
    server = start_server(tmp_path, {"models": models})
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=60)
        for how in bad:
            for stream in (False, True):
                started = time.monotonic()
                with pytest.raises(openai.APIStatusError) as err:
                    answer = client.chat.completions.create(model=f"{how}-chat", messages=CHAT["messages"],
                                                            stream=stream)  # fmt: skip
                    if stream:
                        list(answer)
                assert err.value.status_code == 503, (how, stream, err.value)
                validate("ErrorResponse", err.value.response.json())
                assert err.value.code == "engine_overloaded" and err.value.response.headers["retry-after"]
                assert time.monotonic() - started < 30  # the hang is cut at the deployment's timeout
    finally:
        stop_server(server)
        for up in bad.values():
            up.close()
