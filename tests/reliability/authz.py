"""Shared by the authorization matrix: a server on the fake engines, the kinds of key, and real
objects of one project for every path parameter."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai

from tests.conftest import Server, create_key, start_server, wait_for_status

FAKE_MODELS = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
               {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake"},
               # the real classifier (it loads in a second), reading the fake embeddings
               {"id": "moderation", "version": "v1", "kind": "moderation", "backend": "toxicity",
                "package": "toxic_classifier", "file": "model", "embedding_model": "fake-embed",
                "aliases": ["omni-moderation-latest"]},
               {"id": "fake-spare", "version": "v1", "kind": "chat", "backend": "fake"}]  # fmt: skip
CONFIG = {"models": FAKE_MODELS, "vector_store_model": "fake-embed", "cache_enabled": False}

# A valid body for each model call, so a refusal is the key's doing and not the body's.
MODEL_BODIES = {
    "/v1/chat/completions": {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    "/v1/completions": {"model": "fake-chat", "prompt": "hi", "max_tokens": 2},
    "/v1/embeddings": {"model": "fake-embed", "input": "hi"},
    "/v1/moderations": {"input": "hi"},
    "/v1/messages": {"model": "fake-chat", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]},
    "/v1/messages/count_tokens": {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "fake-chat", "input": "hi", "max_output_tokens": 16},
    "/v1/responses/compact": {"model": "fake-chat", "input": "hi"},
    "/v1/responses/input_tokens": {"model": "fake-chat", "input": "hi"},
}


@dataclass
class World:
    server: Server
    keys: dict[str, str | None]  # kind → the Authorization secret (None: no header)
    params: dict[str, str]  # path parameter → an id owned by the project under test
    spare_params: dict[str, str]  # a second set in the same project, for the other key that may delete them

    def params_for(self, kind: str, path: str) -> dict[str, str]:
        found = self.spare_params if kind == "other_models" else self.params
        if path.startswith("/v1/vector_stores/"):
            return found | {"batch_id": found["vs_batch_id"]}  # a file batch, not a Batch API batch
        return found

    def call(self, kind: str, method: str, path: str) -> httpx.Response:
        secret = self.keys[kind]
        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        body = MODEL_BODIES.get(path, {}) if method == "POST" else None
        query = {"start_time": 0} if path.startswith(("/v1/organization/usage/", "/v1/organization/costs")) else None
        url = self.server.root + path.format(**self.params_for(kind, path))
        return httpx.request(method, url, headers=headers, json=body, params=query, timeout=60)


def call_order(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Reads, then writes, then deletions deepest first, so each route finds the objects it names."""
    rank = {"GET": 0, "POST": 1, "DELETE": 2}
    return sorted(routes, key=lambda r: (rank[r[0]], -r[1].count("/") if r[0] == "DELETE" else 0))


def start_world(tmp: Path) -> World:
    server = start_server(tmp, CONFIG)
    env = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    admin_secret = create_key(env, "--name", "admin", "--admin")
    admin = httpx.Client(base_url=server.root, headers={"Authorization": f"Bearer {admin_secret}"}, timeout=60)

    def project(name: str) -> str:
        return admin.post("/v1/organization/projects", json={"name": name}).raise_for_status().json()["id"]

    def key(project_id: str, **fields: object) -> dict:
        body = {"name": "k", **fields}
        return admin.post(f"/v1/homeport/projects/{project_id}/api_keys", json=body).raise_for_status().json()

    main, other, archived, spare = project("main"), project("other"), project("archived"), project("spare")
    revoked = key(main)
    admin.delete(f"/v1/organization/projects/{main}/api_keys/{revoked['id']}").raise_for_status()
    archived_key = key(archived)
    admin.post(f"/v1/organization/projects/{archived}/archive").raise_for_status()
    expiring = key(main, expires_in_seconds=1)
    keys = {
        "none": None,
        "malformed": "not a key at all",
        "revoked": revoked["value"],
        "expired": expiring["value"],
        "archived_project": archived_key["value"],
        "read_only": key(main, read_only=True)["value"],
        "other_endpoints": key(main, endpoints=["embeddings"])["value"],
        "other_models": key(main, models=["fake-embed"])["value"],
        "other_project": key(other)["value"],
        "admin": admin_secret,
        "owner": key(main)["value"],
    }
    spare_key = key(spare)
    spare_admin = admin.post("/v1/organization/admin_api_keys", json={"name": "spare"}).raise_for_status().json()
    admin_params = {
        "project_id": spare,  # the admin routes act on a project nobody else uses
        "api_key_id": spare_key["id"],
        "rate_limit_id": "rl-fake-chat",
        "key_id": spare_admin["id"],
        "model": "fake-chat",
        "kind": "completions",
        "model_id": "fake-spare",  # loaded and unloaded by the admin rows; no other row calls it
    }
    params = _objects(server, keys["owner"]) | admin_params
    spare_params = _objects(server, keys["owner"]) | admin_params
    deadline = time.monotonic() + 60
    expired = {"Authorization": f"Bearer {keys['expired']}"}
    while httpx.get(f"{server.base_url}/models", headers=expired).status_code != 401:
        assert time.monotonic() < deadline, "the 1-second key never expired"
        time.sleep(0.2)
    admin.close()
    return World(server, keys, params, spare_params)


def _objects(server: Server, secret: str | None) -> dict[str, str]:
    """One of each object the project under test owns, by the path parameter that names it."""
    client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
    file = client.files.create(file=("notes.txt", io.BytesIO(b"Homeport keeps data local.")), purpose="assistants")
    store = client.vector_stores.create(name="s", file_ids=[file.id])
    wait_for_status(lambda: client.vector_stores.retrieve(store.id), ("completed",))
    file_batch = client.vector_stores.file_batches.create(store.id, file_ids=[file.id])
    assistant = client.beta.assistants.create(model="fake-chat")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    message = client.beta.threads.messages.list(thread.id).data[0]
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    response = client.responses.create(model="fake-chat", input="hi", max_output_tokens=16)
    conversation = client.conversations.create(items=[{"type": "message", "role": "user", "content": "hi"}])
    item = client.conversations.items.list(conversation.id).data[0]
    completion = client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=2, store=True)  # fmt: skip
    line = {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": MODEL_BODIES["/v1/embeddings"]}
    batch_file = client.files.create(file=("b.jsonl", io.BytesIO(json.dumps(line).encode())), purpose="batch")
    batch = client.batches.create(input_file_id=batch_file.id, endpoint="/v1/embeddings", completion_window="24h")
    upload = client.uploads.create(filename="u.txt", bytes=3, mime_type="text/plain", purpose="assistants")
    return {
        "file_id": file.id, "store_id": store.id, "vs_batch_id": file_batch.id, "assistant_id": assistant.id,
        "thread_id": thread.id, "message_id": message.id, "run_id": run.id, "step_id": step.id,
        "response_id": response.id, "conversation_id": conversation.id, "item_id": item.id,
        "completion_id": completion.id, "batch_id": batch.id, "upload_id": upload.id,
    }  # fmt: skip
