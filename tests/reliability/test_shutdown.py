"""SIGTERM on a busy server: in-flight generations get the grace period, then are stopped with an
error the client can read; the process exits soon after and no usage record is lost."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time

import httpx

from tests.conformance.test_metrics import _samples
from tests.conftest import API_KEY, start_server

MODEL = "smollm2-135m-instruct"
GRACE_S = 2
# <|endoftext|> and <|im_end|> banned: each request would write all 3000 tokens (~30 s here).
ENDLESS = {"model": MODEL, "messages": [{"role": "user", "content": "Write a very long essay."}],
           "max_tokens": 3000, "logit_bias": {"0": -100, "2": -100}}  # fmt: skip
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def test_sigterm_stops_generations_after_the_grace_period_and_keeps_their_usage(tmp_path) -> None:
    server = start_server(tmp_path, {"shutdown_grace_s": GRACE_S, "cache_enabled": False, "load_models": [MODEL]})
    seen: dict[str, object] = {}

    def plain() -> None:
        seen["plain"] = httpx.post(f"{server.base_url}/chat/completions", json=ENDLESS, headers=HEADERS, timeout=120)

    def streamed() -> None:
        with httpx.stream("POST", f"{server.base_url}/chat/completions", json=ENDLESS | {"stream": True},
                          headers=HEADERS, timeout=120) as r:  # fmt: skip
            seen["stream"] = [line.removeprefix("data: ") for line in r.iter_lines() if line]

    clients = [threading.Thread(target=plain), threading.Thread(target=streamed)]
    try:
        for t in clients:
            t.start()
        slots = ("homeport_engine_slots_busy", (("model", MODEL),))
        deadline = time.monotonic() + 120
        while _samples(server).get(slots) != 2:  # both generating
            assert time.monotonic() < deadline, "the two requests never reached the engine"
            time.sleep(0.05)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=GRACE_S + 60)
        exited_in = time.monotonic() - signalled
        for t in clients:
            t.join(timeout=30)
    finally:
        if server.process.poll() is None:
            server.process.kill()
    assert exited_in < GRACE_S + 15, f"exited {exited_in:.1f} s after SIGTERM"  # not the ~30 s of generation
    plain_answer = seen["plain"]
    assert isinstance(plain_answer, httpx.Response) and plain_answer.status_code == 503
    assert plain_answer.json()["error"]["code"] == "server_shutting_down"
    events = seen["stream"]
    assert isinstance(events, list) and events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "server_shutting_down"
    assert len(events) > 3  # it streamed tokens before the grace period ended
    with sqlite3.connect(server.data_dir / "homeport.db") as db:
        rows = db.execute("SELECT status FROM usage_records WHERE endpoint = '/v1/chat/completions'").fetchall()
    assert sorted(rows) == [(503,), (503,)]  # both recorded, flushed before exit
