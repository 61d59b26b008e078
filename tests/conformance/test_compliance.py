"""Compliance through the front door: the audit log (OpenAI's shape, filters, append-only) and the
erasure of an end user's data (admin API and CLI)."""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import tarfile
import time

import httpx
import openai
import pytest

from tests.conftest import API_KEY, create_key, homeport_cli, start_server, stop_server, wait_for_status
from tests.spec import validate

FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
        {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake"}]  # fmt: skip
CONFIG = {"models": FAKE, "vector_store_model": "fake-embed", "cache_enabled": False}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # -> (server, admin client, env)
    server = start_server(tmp_path_factory.mktemp("compliance"), CONFIG)
    env = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    admin_secret = create_key(env, "--name", "root", "--admin")
    admin = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {admin_secret}"}, timeout=60)
    yield server, admin, env
    admin.close()
    stop_server(server)


def test_the_audit_log_records_platform_changes_append_only(served) -> None:
    server, admin, env = served
    started = int(time.time())
    project = admin.post("/organization/projects", json={"name": "audited"}).json()
    key = admin.post(f"/homeport/projects/{project['id']}/api_keys", json={"name": "k", "endpoints": ["chat"]}).json()
    admin.post(f"/organization/projects/{project['id']}/rate_limits/rl-*", json={"max_requests_per_1_minute": 5})
    admin.delete(f"/organization/projects/{project['id']}/api_keys/{key['id']}")
    admin.post(f"/organization/projects/{project['id']}/archive")
    create_key(env, "--name", "from-cli", "--project", "audited-cli")
    homeport_cli(env, "limits", "set", "--project", "audited-cli", "--rpm", "9")

    listed = admin.get("/organization/audit_logs", params={"effective_at[gte]": started}).json()
    validate("ListAuditLogsResponse", listed)
    for entry in listed["data"]:
        validate("AuditLog", entry)
    kinds = [e["type"] for e in listed["data"]]
    assert kinds[:7] == ["rate_limit.updated", "api_key.created", "project.archived", "api_key.deleted",
                         "rate_limit.updated", "api_key.created", "project.created"]  # fmt: skip  # newest first
    limited, cli, archived = listed["data"][:3]
    assert limited["actor"]["type"] == "session" and limited["rate_limit.updated"]["changes_requested"]["rpm"] == 9
    assert cli["actor"]["type"] == "session" and cli["project"]["name"] == "audited-cli"
    assert archived["actor"]["api_key"]["type"] == "service_account" and archived["project"]["id"] == project["id"]
    assert listed["data"][5]["api_key.created"] == {"id": key["id"], "data": {"scopes": ["chat"]}}

    only = admin.get("/organization/audit_logs", params={"event_types[]": ["project.created", "project.archived"],
                                                        "project_ids[]": project["id"]}).json()  # fmt: skip
    assert [e["type"] for e in only["data"]] == ["project.archived", "project.created"]
    page = admin.get("/organization/audit_logs", params={"limit": 2, "effective_at[gte]": started}).json()
    rest = admin.get("/organization/audit_logs", params={"limit": 100, "after": page["last_id"],
                                                        "effective_at[gte]": started}).json()  # fmt: skip
    assert page["has_more"] and [e["id"] for e in page["data"] + rest["data"]] == [e["id"] for e in listed["data"]]
    assert admin.get("/organization/audit_logs", params={"effective_at[gt]": started + 3600}).json()["data"] == []

    for method in ("PUT", "PATCH", "DELETE", "POST"):  # no route edits an entry
        answer = admin.request(method, "/organization/audit_logs", json={})
        assert answer.status_code == 405, (method, answer.status_code)
        validate("ErrorResponse", answer.json())
    answer = admin.delete(f"/organization/audit_logs/{cli['id']}")
    assert answer.status_code == 404
    with sqlite3.connect(server.data_dir / "homeport.db") as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE audit_logs SET type = 'project.created'")  # nor can anyone below the API
    user_key = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        user_key.get("/organization/audit_logs", cast_to=object)


def test_erasing_an_end_user_deletes_what_names_them_and_nothing_else(served) -> None:
    server, admin, env = served
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    theirs, mine = {"user_id": "user-42"}, {"user_id": "user-7"}

    def objects(meta: dict[str, str], ident: str) -> dict[str, str]:
        ask = [{"role": "user", "content": "hi"}]
        embed = {"model": "fake-embed", "input": "x"}
        line = {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": embed}
        batch_file = client.files.create(file=("b.jsonl", io.BytesIO(json.dumps(line).encode())), purpose="batch")
        return {
            "response": client.responses.create(model="fake-chat", input="hi", safety_identifier=ident).id,
            "conversation": client.conversations.create(metadata=meta).id,
            "completion": client.chat.completions.create(model="fake-chat", messages=ask, store=True,
                                                         metadata=meta).id,  # fmt: skip
            "assistant": client.beta.assistants.create(model="fake-chat", metadata=meta).id,
            "thread": client.beta.threads.create(metadata=meta).id,
            "vector_store": client.vector_stores.create(metadata=meta).id,
            "batch": client.batches.create(input_file_id=batch_file.id, endpoint="/v1/embeddings",
                                           completion_window="24h", metadata=meta).id,  # fmt: skip
        }

    erased, kept = objects(theirs, "user-42"), objects(mine, "user-7")
    answer = admin.post("/homeport/erasure", json={"user": "user-42"}).json()
    assert answer["deleted"] == {"responses": 1, "conversations": 1, "chat_completions": 1, "assistants": 1,
                                 "threads": 1, "vector_stores": 1, "batches": 1}  # fmt: skip
    fetch = {
        "response": client.responses.retrieve, "conversation": client.conversations.retrieve,
        "completion": client.chat.completions.retrieve, "assistant": client.beta.assistants.retrieve,
        "thread": client.beta.threads.retrieve, "vector_store": client.vector_stores.retrieve,
        "batch": client.batches.retrieve,
    }  # fmt: skip
    for kind, object_id in erased.items():
        with pytest.raises(openai.NotFoundError):
            fetch[kind](object_id)
    for kind, object_id in kept.items():
        assert fetch[kind](object_id).id == object_id  # another user's data stays
    log = admin.get("/organization/audit_logs", params={"event_types[]": "resource.deleted"}).json()
    assert log["data"][0]["resource.deleted"]["id"].startswith("user:sha256:")
    assert "user-42" not in json.dumps(log)  # the log of the erasure does not keep the name

    printed = json.loads(homeport_cli(env, "erase", "--user", "user-7"))
    assert printed["deleted"]["responses"] == 1 and printed["deleted"]["threads"] == 1
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept["response"])


def test_export_a_project_then_delete_it_with_all_its_data(served, tmp_path) -> None:
    server, admin, env = served
    secret = create_key(env, "--name", "leaving", "--project", "leaving")
    client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
    file = client.files.create(file=("notes.txt", io.BytesIO(b"our notes")), purpose="assistants")
    store = client.vector_stores.create(file_ids=[file.id])
    response = client.responses.create(model="fake-chat", input="remember this")
    conversation = client.conversations.create(items=[{"type": "message", "role": "user", "content": "hello"}])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])

    archive = tmp_path / "leaving.tar.gz"
    printed = json.loads(homeport_cli(env, "projects", "delete", "leaving", "--archive", str(archive)))
    assert printed["deleted"]["files"] == 1 and printed["deleted"]["responses"] == 1
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert {"manifest.json", "files.jsonl", "responses.jsonl", "conversation_items.jsonl",
                f"files/{file.id}"} <= names  # fmt: skip
        assert tar.extractfile(f"files/{file.id}").read() == b"our notes"
        rows = {n: [json.loads(line) for line in tar.extractfile(n).read().splitlines()]
                for n in names if n.endswith(".jsonl")}  # fmt: skip
    assert [r["id"] for r in rows["responses.jsonl"]] == [response.id]
    assert [r["id"] for r in rows["vector_stores.jsonl"]] == [store.id]
    assert {r["id"] for r in rows["assistant_objects.jsonl"]} >= {thread.id}
    assert [r["conversation_id"] for r in rows["conversation_items.jsonl"]] == [conversation.id]
    assert all("secret_hash" not in r for r in rows["api_keys.jsonl"])

    with pytest.raises(openai.AuthenticationError):  # its keys went with it
        client.models.list()
    with sqlite3.connect(server.data_dir / "homeport.db") as db:
        for table in ("files", "vector_stores", "responses", "conversations", "assistant_objects", "api_keys"):
            project_id = rows["projects.jsonl"][0]["id"]
            assert db.execute(f"SELECT count(*) FROM {table} WHERE project_id = ?", (project_id,)).fetchone() == (0,)
    log = admin.get("/organization/audit_logs", params={"event_types[]": "project.deleted"}).json()
    assert log["data"][0]["project.deleted"]["id"] == rows["projects.jsonl"][0]["id"]


def test_files_and_prompt_logs_are_encrypted_at_rest_with_a_key_from_the_environment(tmp_path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    server = start_server(tmp_path, CONFIG, env={"HOMEPORT_ENCRYPTION_KEY": key})
    env = {"HOMEPORT_DATA_DIR": str(server.data_dir), "HOMEPORT_ENCRYPTION_KEY": key}
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
        text = b"The vault code is 7341. " * 2000
        file = client.files.create(file=("vault.txt", io.BytesIO(text)), purpose="assistants")
        assert client.files.content(file.id).read() == text
        store = client.vector_stores.create(file_ids=[file.id])  # ingestion reads the bytes back
        assert wait_for_status(lambda: client.vector_stores.retrieve(store.id), ("completed", "failed")).status == (
            "completed"
        )
        on_disk = [p.read_bytes() for p in (server.data_dir / "files").iterdir()]
        assert on_disk and all(b"vault code" not in blob for blob in on_disk)

        logged = create_key(env, "--name", "logged", "--project", "sealed")
        homeport_cli(env, "projects", "set", "sealed", "--log-prompts")
        time.sleep(1.1)  # the key's project settings are cached for key_cache_s
        asker = openai.OpenAI(base_url=server.base_url, api_key=logged, max_retries=0)
        asker.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "the vault code"}])
        with sqlite3.connect(server.data_dir / "homeport.db") as db:
            (stored,) = db.execute("SELECT body FROM prompt_logs").fetchone()
        assert stored.startswith("hpe1:") and "vault" not in stored
        (entry,) = [json.loads(x) for x in homeport_cli(env, "projects", "prompts", "sealed").splitlines()]
        assert entry["request"]["messages"][0]["content"] == "the vault code"  # read back with the key
    finally:
        stop_server(server)
