"""Budget alerts reach a webhook (a real HTTP server in the test); JSON access logs."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from tests.conftest import API_KEY, create_key, homeport_cli, start_server, stop_server

FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"}]
ASK = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts"
    server.shutdown()


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory, webhook: str):
    config = {"models": FAKE, "alert_webhook_url": webhook, "log_format": "json"}
    server = start_server(tmp_path_factory.mktemp("alerts"), config)
    yield server
    stop_server(server)


def test_budget_thresholds_are_posted_once_each(fake_server) -> None:
    env = {"HOMEPORT_DATA_DIR": str(fake_server.data_dir)}
    secret = create_key(env, "--name", "alerted", "--budget-tokens", "100")  # 25 tokens per request
    codes = []
    with httpx.Client(headers={"Authorization": f"Bearer {secret}"}) as http:
        for _ in range(6):
            codes.append(http.post(f"{fake_server.base_url}/chat/completions", json=ASK).status_code)
    assert codes == [200, 200, 200, 200, 429, 429]
    deadline = time.monotonic() + 5
    while len(_Receiver.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    got = [(a["budget"], a["threshold"], a["used"], a["limit"]) for a in _Receiver.received]
    assert got == [("tokens", 0.5, 50, 100), ("tokens", 0.8, 100, 100), ("tokens", 1.0, 100, 100)]
    assert {a["type"] for a in _Receiver.received} == {"budget.threshold"}


def test_json_access_log_has_request_id_and_no_prompt(fake_server) -> None:
    marker = "do-not-log-this-prompt"
    body = {**ASK, "messages": [{"role": "user", "content": marker}]}
    r = httpx.post(
        f"{fake_server.base_url}/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"}, json=body
    )
    time.sleep(0.3)
    lines = [json.loads(line) for line in fake_server.log.read_text().splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry.get("request_id") == r.headers["x-request-id"]]
    assert access and access[0]["status"] == 200 and access[0]["path"] == "/v1/chat/completions"
    assert access[0]["model"] == "fake-chat" and access[0]["key_id"].startswith("key_")
    assert marker not in fake_server.log.read_text()


def test_prompts_are_logged_only_for_projects_that_opt_in(fake_server) -> None:
    """Stored (not printed), so retention, erasure and encryption at rest reach them; read back
    with `homeport projects prompts NAME`."""
    env = {"HOMEPORT_DATA_DIR": str(fake_server.data_dir)}
    private = create_key(env, "--name", "private", "--project", "private-team")
    logged = create_key(env, "--name", "logged", "--project", "audited-team")
    homeport_cli(env, "projects", "set", "audited-team", "--log-prompts")
    time.sleep(1.1)  # keys (and their project's settings) are cached for key_cache_s = 1 s
    markers = {}
    for name, secret in (("private", private), ("logged", logged)):
        markers[name] = f"marker-{name}-{time.time_ns()}"
        body = {**ASK, "messages": [{"role": "user", "content": markers[name]}], "user": "end-user-9"}
        with httpx.Client(headers={"Authorization": f"Bearer {secret}"}) as http:
            assert http.post(f"{fake_server.base_url}/chat/completions", json=body).status_code == 200
            with http.stream("POST", f"{fake_server.base_url}/chat/completions",
                             json={**body, "stream": True}) as stream:  # fmt: skip
                list(stream.iter_lines())
            with http.stream("POST", f"{fake_server.base_url}/responses", json={"model": "fake-chat", "stream": True,
                             "input": markers[name], "max_output_tokens": 16}) as stream:  # fmt: skip
                list(stream.iter_lines())
    text = fake_server.log.read_text()
    assert markers["private"] not in text and markers["logged"] not in text  # never in the process log
    assert homeport_cli(env, "projects", "prompts", "private-team") == ""
    records = [json.loads(line) for line in homeport_cli(env, "projects", "prompts", "audited-team").splitlines()]
    assert len(records) == 3 and all(r["request_id"] and r["key_id"] for r in records)
    plain, streamed, response = records
    assert response["request"]["input"] == markers["logged"] and response["response"]["stream"]["0"]
    assert plain["request"]["messages"][0]["content"] == markers["logged"]
    answer = plain["response"]["choices"][0]["message"]["content"]
    assert answer and streamed["response"]["stream"]["0"] == answer  # the fake engine answers a prompt alike
    erased = json.loads(homeport_cli(env, "erase", "--user", "end-user-9"))
    assert erased["deleted"]["prompt_logs"] == 2  # the two chat requests named the end user
    assert len(homeport_cli(env, "projects", "prompts", "audited-team").splitlines()) == 1
