"""The Batch API through the official SDK: a JSONL file of requests run as a job — validated,
executed through the same services and limits as live calls, results written to output and error
files, cancelled, and completed exactly once after a kill -9 of its server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai

from tests.conftest import create_key, homeport_cli, start_server, stop_server, wait_for_status
from tests.spec import validate, wire

FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
        {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake"},
        {"id": "moderation", "version": "v1", "kind": "moderation", "backend": "toxicity",
         "package": "toxic_classifier", "file": "model", "embedding_model": "fake-embed",
         "aliases": ["omni-moderation-latest"]}]  # fmt: skip
SLOW = [{**FAKE[0], "fake_token_delay_s": 0.1}, *FAKE[1:]]
DEADLINE_S = 120


def _jsonl(lines: list[dict]) -> bytes:
    return "\n".join(json.dumps(line) for line in lines).encode()


def _chat(custom_id: str, **body) -> dict:  # type: ignore[no-untyped-def]
    request = {"model": "fake-chat", "messages": [{"role": "user", "content": custom_id}], "max_tokens": 8} | body
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": request}


def _until(client: openai.OpenAI, object_id: str, done: tuple[str, ...]):  # type: ignore[no-untyped-def]
    return wait_for_status(lambda: client.batches.retrieve(object_id), done, DEADLINE_S)


def _results(client: openai.OpenAI, file_id: str | None) -> list[dict]:
    return [] if file_id is None else [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def _start(client: openai.OpenAI, lines: list[dict], endpoint: str = "/v1/chat/completions"):  # type: ignore[no-untyped-def]
    uploaded = client.files.create(file=("batch.jsonl", _jsonl(lines)), purpose="batch")
    return client.batches.create(input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]


def test_a_batch_runs_its_lines_and_writes_results(tmp_path) -> None:
    server = start_server(tmp_path, {"models": FAKE, "vector_store_model": "fake-embed"})
    try:
        secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "b", "--project", "batch")
        client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
        lines = [_chat(f"req-{i}") for i in range(12)] + [_chat("bad", max_tokens=0)]
        created = _start(client, lines)
        validate("Batch", wire(created))
        assert created.status == "validating"
        done = _until(client, created.id, ("completed", "failed"))
        validate("Batch", wire(done))
        assert done.status == "completed" and done.request_counts.total == 13
        assert (done.request_counts.completed, done.request_counts.failed) == (12, 1)
        output, errors = _results(client, done.output_file_id), _results(client, done.error_file_id)
        assert sorted(r["custom_id"] for r in output) == sorted(f"req-{i}" for i in range(12))  # each once
        for r in output:
            assert r["response"]["status_code"] == 200
            validate("CreateChatCompletionResponse", r["response"]["body"])
        assert [(r["custom_id"], r["response"]["status_code"]) for r in errors] == [("bad", 400)]
        assert errors[0]["response"]["body"]["error"]["param"] == "max_tokens"
        assert client.batches.list().data[0].id == created.id
        line = {"custom_id": "e", "method": "POST", "url": "/v1/embeddings",
                "body": {"model": "fake-embed", "input": "hello"}}  # fmt: skip
        uploaded = client.files.create(file=("e.jsonl", _jsonl([line])), purpose="batch")
        embed = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h",
                                      output_expires_after={"anchor": "created_at", "seconds": 3600})  # fmt: skip
        embedded = _until(client, embed.id, ("completed", "failed"))
        assert _results(client, embedded.output_file_id)[0]["response"]["body"]["data"][0]["embedding"]
        output_file = client.files.retrieve(embedded.output_file_id)
        assert output_file.purpose == "batch_output" and output_file.expires_at
        moderate = [{"custom_id": f"m{i}", "method": "POST", "url": "/v1/moderations", "body": {"input": text}}
                    for i, text in enumerate(["Have a nice day.", "You worthless idiot, shut up."])]  # fmt: skip
        moderated = _until(client, _start(client, moderate, "/v1/moderations").id, ("completed", "failed"))
        answers = {r["custom_id"]: r["response"]["body"] for r in _results(client, moderated.output_file_id)}
        for body in answers.values():
            validate("CreateModerationResponse", body)
        assert [answers[k]["results"][0]["flagged"] for k in ("m0", "m1")] == [False, True]
        other = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "o", "--project", "elsewhere")
        stranger = openai.OpenAI(base_url=server.base_url, api_key=other, max_retries=0)
        try:
            stranger.batches.retrieve(created.id)
            raise AssertionError("another project's batch was found")
        except openai.NotFoundError:
            pass
    finally:
        stop_server(server)


def test_a_bad_file_fails_naming_its_lines_and_bad_requests_are_400(tmp_path) -> None:
    server = start_server(tmp_path, {"models": FAKE, "vector_store_model": "fake-embed"})
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=create_key(
            {"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "b"), max_retries=0)  # fmt: skip
        bad = [_chat("a"), _chat("a"), {**_chat("b"), "url": "/v1/embeddings"}, _chat("c", model="gpt-9")]
        failed = _until(client, _start(client, bad).id, ("completed", "failed"))
        validate("Batch", wire(failed))
        assert failed.status == "failed"
        expected = [("duplicate_custom_id", 2), ("mismatched_endpoint", 3), ("model_not_found", 4)]
        assert [(e.code, e.line) for e in failed.errors.data] == expected
        uploaded = client.files.create(file=("x.jsonl", _jsonl([_chat("a")])), purpose="batch")
        for kwargs, param in (({"endpoint": "/v1/images/generations"}, "endpoint"),
                              ({"input_file_id": "file-missing"}, "input_file_id"),
                              ({"completion_window": "1h"}, "completion_window")):  # fmt: skip
            body = {"input_file_id": uploaded.id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
            try:
                client.batches.create(**(body | kwargs))  # type: ignore[arg-type]
                raise AssertionError(kwargs)
            except (openai.BadRequestError, openai.NotFoundError) as err:
                assert err.body["param"] == param  # type: ignore[index]
    finally:
        stop_server(server)


def test_cancel_and_a_crash_mid_batch(tmp_path) -> None:
    config = {"models": SLOW, "vector_store_model": "fake-embed", "run_heartbeat_s": 2}
    server = start_server(tmp_path / "a", config)
    data = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=create_key(data, "--name", "b"), max_retries=0)
        stopped = _start(client, [_chat(f"c-{i}", max_tokens=20) for i in range(40)])
        _until(client, stopped.id, ("in_progress",))
        cancelling = client.batches.cancel(stopped.id)
        assert cancelling.status in ("cancelling", "cancelled")
        cancelled = _until(client, stopped.id, ("cancelled", "completed", "failed"))
        assert cancelled.status == "cancelled" and cancelled.request_counts.completed < 40
        kept = _results(client, cancelled.output_file_id)  # what finished is still written
        assert len(kept) == cancelled.request_counts.completed
        cut = _start(client, [_chat(f"k-{i}", max_tokens=20) for i in range(24)])
        deadline = time.monotonic() + DEADLINE_S
        while client.batches.retrieve(cut.id).request_counts.completed < 4:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        server.process.kill()  # SIGKILL mid-batch
        server.process.wait()
        secret = client.api_key
    finally:
        stop_server(server)
    server = start_server(tmp_path / "b", config, env=data)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
        done = _until(client, cut.id, ("completed", "failed", "cancelled"))
        assert done.status == "completed"
        ids = [r["custom_id"] for r in _results(client, done.output_file_id) + _results(client, done.error_file_id)]
        assert sorted(ids) == sorted(f"k-{i}" for i in range(24))  # every line exactly once
    finally:
        stop_server(server)


def test_the_batches_cli_creates_follows_and_downloads(tmp_path) -> None:
    server = start_server(tmp_path / "server", {"models": FAKE, "vector_store_model": "fake-embed"})
    try:
        env = {"HOMEPORT_DATA_DIR": str(server.data_dir), "OPENAI_BASE_URL": server.base_url}
        env["OPENAI_API_KEY"] = create_key(env, "--name", "cli", "--project", "cli-batch")
        requests = tmp_path / "requests.jsonl"
        requests.write_bytes(_jsonl([_chat(f"q-{i}") for i in range(5)]))
        batch_id = homeport_cli(env, "batches", "create", str(requests), "--endpoint", "/v1/chat/completions",
                                "--metadata", "job=nightly").strip()  # fmt: skip
        assert batch_id.startswith("batch_")
        assert batch_id in homeport_cli(env, "batches", "list")
        finished = json.loads(homeport_cli(env, "batches", "status", batch_id, "--wait"))
        assert finished["status"] == "completed" and finished["metadata"] == {"job": "nightly"}
        written = homeport_cli(env, "batches", "download", batch_id, "--to", str(tmp_path / "out")).split()
        output = [json.loads(line) for line in Path(written[0]).read_text().splitlines()]
        assert sorted(r["custom_id"] for r in output) == [f"q-{i}" for i in range(5)]
        assert homeport_cli(env, "batches", "cancel", batch_id).strip() == "completed"  # nothing left to stop
    finally:
        stop_server(server)


def test_batch_1_day_max_input_tokens_fails_a_batch_over_the_limit(tmp_path) -> None:
    """The limit counts the input tokens of the project's batches of the last 24 hours."""
    server = start_server(tmp_path, {"models": FAKE, "vector_store_model": "fake-embed"})
    try:
        env = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
        client = openai.OpenAI(base_url=server.base_url, max_retries=0,
                               api_key=create_key(env, "--name", "b", "--project", "capped"))  # fmt: skip
        lines = [_chat(f"line-{i}") for i in range(4)]
        per_batch = sum(client.chat.completions.create(**line["body"]).usage.prompt_tokens for line in lines)
        admin = create_key(env, "--name", "root", "--admin")
        projects = httpx.get(f"{server.base_url}/organization/projects", headers={"Authorization": f"Bearer {admin}"})
        project_id = next(p["id"] for p in projects.json()["data"] if p["name"] == "capped")
        limit = httpx.post(f"{server.base_url}/organization/projects/{project_id}/rate_limits/rl-fake-chat",
                           headers={"Authorization": f"Bearer {admin}"},
                           json={"batch_1_day_max_input_tokens": per_batch + per_batch // 2}).json()  # fmt: skip
        validate("ProjectRateLimit", limit)
        assert limit["batch_1_day_max_input_tokens"] == per_batch + per_batch // 2
        first = _until(client, _start(client, lines).id, ("completed", "failed"))
        assert first.status == "completed"
        second = _until(client, _start(client, lines).id, ("completed", "failed"))
        assert second.status == "failed" and second.errors.data[0].code == "token_limit_exceeded"
        assert f"Limit: {per_batch + per_batch // 2}" in second.errors.data[0].message
        embed = {"custom_id": "e", "method": "POST", "url": "/v1/embeddings", "body": {"model": "fake-embed",
                 "input": "hello"}}  # fmt: skip
        other_model = _until(client, _start(client, [embed], "/v1/embeddings").id, ("completed", "failed"))
        assert other_model.status == "completed"  # the limit is fake-chat's
    finally:
        stop_server(server)


def test_a_batch_past_its_window_expires_keeping_what_finished(tmp_path) -> None:
    config = {"models": SLOW, "vector_store_model": "fake-embed", "batch_window_s": 4}
    server = start_server(tmp_path, config)
    try:
        client = openai.OpenAI(base_url=server.base_url, max_retries=0,
                               api_key=create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "b"))
        lines = [_chat(f"slow-{i}") for i in range(64)]  # 0.8 s a line, 8 at once: ~6.4 s in all
        done = _until(client, _start(client, lines).id, ("completed", "failed", "expired"))
        validate("Batch", wire(done))
        assert done.status == "expired" and done.expired_at and not done.completed_at
        output, errors = _results(client, done.output_file_id), _results(client, done.error_file_id)
        assert output and errors
        assert {e["error"]["code"] for e in errors} == {"batch_expired"} and errors[0]["response"] is None
        assert sorted(r["custom_id"] for r in output + errors) == sorted(f"slow-{i}" for i in range(64))
        assert (done.request_counts.completed, done.request_counts.failed) == (len(output), len(errors))
    finally:
        stop_server(server)


class _CountingUpstream:
    """An OpenAI-compatible chat server that answers after 0.3 s and counts requests in flight."""

    def __init__(self) -> None:
        self.now = self.most = self.served = 0

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        import asyncio

        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # health checks: GET /v1/models
            body = {"object": "list", "data": [{"id": "stub", "object": "model", "created": 0, "owned_by": "t"}]}
        else:
            while (await receive()).get("more_body"):
                pass
            self.now += 1
            self.most = max(self.most, self.now)
            await asyncio.sleep(0.3)
            self.now -= 1
            self.served += 1
            body = {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": "stub",
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": "ok", "refusal": None}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def test_batch_lines_reach_an_upstream_model_at_the_configured_concurrency(tmp_path) -> None:
    import socket
    import threading

    import uvicorn

    stub = _CountingUpstream()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    upstream = uvicorn.Server(uvicorn.Config(stub, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=upstream.run, daemon=True)
    thread.start()
    model = {"id": "remote-chat", "version": "v1", "kind": "chat", "backend": "upstream",
             "upstreams": [{"base_url": f"http://127.0.0.1:{port}/v1", "model": "stub"}]}  # fmt: skip
    server = start_server(tmp_path, {"models": [*FAKE, model], "vector_store_model": "fake-embed",
                                     "batch_upstream_concurrency": 3})  # fmt: skip
    try:
        client = openai.OpenAI(base_url=server.base_url, max_retries=0,
                               api_key=create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "b"))
        lines = [_chat(f"up-{i}", model="remote-chat") for i in range(12)]
        done = _until(client, _start(client, lines).id, ("completed", "failed"))
        assert done.status == "completed" and done.request_counts.completed == 12
        answers = _results(client, done.output_file_id)
        assert {a["response"]["body"]["choices"][0]["message"]["content"] for a in answers} == {"ok"}
        assert stub.served == 12 and 1 < stub.most <= 3  # in parallel, never over batch_upstream_concurrency
    finally:
        stop_server(server)
        upstream.should_exit = True
        thread.join(timeout=10)
