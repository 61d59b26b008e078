"""The authorization matrix: every route × every kind of key, each pair's exact status and code.

The routes come from the running app's own table (its OpenAPI document), and each must have a row
in ROUTES: a route added without saying who may call it fails the test. A row gives the route's
policy and the status its rightful caller gets for the matrix's request (a valid body for model
calls, `{}` otherwise, ids of real objects); `expected` derives every other key's answer from that.
"""

from __future__ import annotations

import httpx
import pytest

from homeport.api.families import endpoint_family
from tests.conftest import stop_server
from tests.reliability.authz import World, call_order, start_world

INVALID = ("none", "malformed", "revoked", "expired", "archived_project")

# METHOD PATH POLICY STATUS — public: anyone; models/usage: any valid key; model: a model call;
# data: a project's objects; admin: admin keys only. STATUS: what the rightful caller gets (400 for
# `{}` where the body needs fields; 400!: refused for the object's state, so after finding it).
ROUTES = """
GET /healthz public 200
GET /readyz public 200
GET /metrics public 200
GET /v1/models models 200
GET /v1/models/{model} models 200
GET /v1/organization/usage/{kind} usage 200
GET /v1/organization/costs usage 200
POST /v1/chat/completions model 200
POST /v1/completions model 200
POST /v1/embeddings model 200
POST /v1/moderations model 200
POST /v1/messages model 200
POST /v1/messages/count_tokens model 200
POST /v1/audio/transcriptions data 400
POST /v1/audio/translations data 400
POST /v1/audio/speech data 400
POST /v1/responses model 200
POST /v1/responses/compact model 200
POST /v1/responses/input_tokens model 200
GET /v1/chat/completions data 200
GET /v1/chat/completions/{completion_id} data 200
POST /v1/chat/completions/{completion_id} data 200
DELETE /v1/chat/completions/{completion_id} data 200
GET /v1/chat/completions/{completion_id}/messages data 200
GET /v1/organization/projects admin 200
POST /v1/organization/projects admin 400
GET /v1/organization/projects/{project_id} admin 200
POST /v1/organization/projects/{project_id} admin 200
POST /v1/organization/projects/{project_id}/archive admin 200
GET /v1/organization/projects/{project_id}/api_keys admin 200
GET /v1/organization/projects/{project_id}/api_keys/{api_key_id} admin 200
DELETE /v1/organization/projects/{project_id}/api_keys/{api_key_id} admin 200
POST /v1/homeport/projects/{project_id}/api_keys admin 400
GET /v1/organization/projects/{project_id}/rate_limits admin 200
POST /v1/organization/projects/{project_id}/rate_limits/{rate_limit_id} admin 200
GET /v1/organization/admin_api_keys admin 200
POST /v1/organization/admin_api_keys admin 400
GET /v1/organization/admin_api_keys/{key_id} admin 200
DELETE /v1/organization/admin_api_keys/{key_id} admin 200
GET /v1/organization/audit_logs admin 200
POST /v1/homeport/erasure admin 400
POST /v1/files data 400
GET /v1/files data 200
GET /v1/files/{file_id} data 200
DELETE /v1/files/{file_id} data 200
GET /v1/files/{file_id}/content data 200
POST /v1/uploads data 400
POST /v1/uploads/{upload_id}/parts data 400
POST /v1/uploads/{upload_id}/complete data 400
POST /v1/uploads/{upload_id}/cancel data 200
POST /v1/vector_stores data 200
GET /v1/vector_stores data 200
GET /v1/vector_stores/{store_id} data 200
POST /v1/vector_stores/{store_id} data 200
DELETE /v1/vector_stores/{store_id} data 200
POST /v1/vector_stores/{store_id}/search data 400
POST /v1/vector_stores/{store_id}/files data 400
GET /v1/vector_stores/{store_id}/files data 200
GET /v1/vector_stores/{store_id}/files/{file_id} data 200
POST /v1/vector_stores/{store_id}/files/{file_id} data 400
DELETE /v1/vector_stores/{store_id}/files/{file_id} data 200
GET /v1/vector_stores/{store_id}/files/{file_id}/content data 200
POST /v1/vector_stores/{store_id}/file_batches data 400
GET /v1/vector_stores/{store_id}/file_batches/{batch_id} data 200
POST /v1/vector_stores/{store_id}/file_batches/{batch_id}/cancel data 200
GET /v1/vector_stores/{store_id}/file_batches/{batch_id}/files data 200
POST /v1/assistants data 400
GET /v1/assistants data 200
GET /v1/assistants/{assistant_id} data 200
POST /v1/assistants/{assistant_id} data 200
DELETE /v1/assistants/{assistant_id} data 200
POST /v1/threads data 200
POST /v1/threads/runs data 400
GET /v1/threads/{thread_id} data 200
POST /v1/threads/{thread_id} data 200
DELETE /v1/threads/{thread_id} data 200
POST /v1/threads/{thread_id}/messages data 400
GET /v1/threads/{thread_id}/messages data 200
GET /v1/threads/{thread_id}/messages/{message_id} data 200
POST /v1/threads/{thread_id}/messages/{message_id} data 200
DELETE /v1/threads/{thread_id}/messages/{message_id} data 200
POST /v1/threads/{thread_id}/runs data 400
GET /v1/threads/{thread_id}/runs data 200
GET /v1/threads/{thread_id}/runs/{run_id} data 200
POST /v1/threads/{thread_id}/runs/{run_id} data 200
POST /v1/threads/{thread_id}/runs/{run_id}/cancel data 400!
POST /v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs data 400
GET /v1/threads/{thread_id}/runs/{run_id}/steps data 200
GET /v1/threads/{thread_id}/runs/{run_id}/steps/{step_id} data 200
GET /v1/responses/{response_id} data 200
DELETE /v1/responses/{response_id} data 200
POST /v1/responses/{response_id}/cancel data 400!
GET /v1/responses/{response_id}/input_items data 200
POST /v1/conversations data 200
GET /v1/conversations/{conversation_id} data 200
POST /v1/conversations/{conversation_id} data 400
DELETE /v1/conversations/{conversation_id} data 200
POST /v1/conversations/{conversation_id}/items data 400
GET /v1/conversations/{conversation_id}/items data 200
GET /v1/conversations/{conversation_id}/items/{item_id} data 200
DELETE /v1/conversations/{conversation_id}/items/{item_id} data 200
POST /v1/batches data 400
GET /v1/batches data 200
GET /v1/homeport/models admin 200
POST /v1/homeport/models admin 400
DELETE /v1/homeport/models/{model_id} admin 400!
POST /v1/homeport/models/{model_id}/load admin 200
POST /v1/homeport/models/{model_id}/unload admin 200
GET /v1/batches/{batch_id} data 200
POST /v1/batches/{batch_id}/cancel data 200
"""
TABLE = {(m, p): (policy, status) for m, p, policy, status in (line.split() for line in ROUTES.strip().splitlines())}


def expected(kind: str, method: str, path: str) -> tuple[int, str | None]:
    """(status, error code) for this key on this route."""
    policy, status = TABLE[(method, path)]
    rightful, bad_body = int(status.rstrip("!")), status == "400"
    family = endpoint_family(path)
    owns_object = "{" in path and policy == "data"
    if policy == "public":
        return 200, None
    if kind in INVALID:
        return 401, "invalid_api_key"
    if policy == "admin":
        return (rightful, None) if kind == "admin" else (403, None)
    if kind == "admin":
        return (403, None) if policy in ("model", "data") else (rightful, None)
    if kind == "read_only" and method != "GET":
        return 403, None
    if kind == "other_endpoints" and family != "embeddings":  # its one family
        return 403, None
    if kind == "other_models" and (policy == "model" or path == "/v1/models/{model}") and family != "embeddings":
        return 404, "model_not_found"  # it may use fake-embed only; the request names fake-chat
    if kind == "other_project" and owns_object and not bad_body:
        return 404, None  # another project's object is not there (a bad body is refused before any lookup)
    return rightful, None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):  # -> World
    found = start_world(tmp_path_factory.mktemp("authz"))
    yield found
    stop_server(found.server)


def test_every_route_has_a_row(world: World) -> None:
    spec = httpx.get(f"{world.server.root}/openapi.json").json()
    routes = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert routes - TABLE.keys() == set(), "routes without a row in ROUTES: say who may call them"
    assert TABLE.keys() - routes == set(), "rows for routes the app no longer has"


def test_every_key_on_every_route(world: World) -> None:
    wrong, secrets_seen = [], []
    for kind in world.keys:
        for method, path in call_order(list(TABLE)):
            answer = world.call(kind, method, path)
            json_error = answer.status_code >= 400 and answer.headers["content-type"].startswith("application/json")
            got = answer.status_code, answer.json()["error"].get("code") if json_error else None
            want = expected(kind, method, path)
            if path.startswith("/v1/messages"):  # Anthropic's error shape has no code: its status says it
                want = (want[0], None)
            if got != want:
                wrong.append(f"{kind:16} {method} {path}: got {got}, expected {want}")
            secrets_seen += [kind for secret in world.keys.values() if secret and secret in answer.text]
    assert wrong == [], "\n".join(wrong)
    assert secrets_seen == [], "a response carried an API key"
    logs, metrics = world.server.log.read_text(), httpx.get(f"{world.server.root}/metrics").text
    for kind, secret in world.keys.items():
        if secret is not None:
            assert secret not in logs and secret not in metrics, f"the {kind} key appeared in the logs or metrics"
