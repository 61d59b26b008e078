"""Fuzzing with schemathesis from OpenAI's spec, against a real server on the fake engines.

Every operation of ../shared/openai-openapi.yaml that Homeport routes gets generated requests
(half of them steered to a model the server has, so they reach the engines). Each answer must be:
not a 5xx, OpenAI's error shape if a 4xx, and valid against the spec's response schema if a JSON
2xx. `HOMEPORT_FUZZ_EXAMPLES` sets the examples per operation: a fixed-seed slice of 6 in
`./run test`, 60 (over 5,000 requests) in `./run reliability`. The requests are the same on every
run unless `HOMEPORT_FUZZ_SEED` names a seed: each seed draws other ones (and draws them again).
"""

from __future__ import annotations

import collections
import os
import re
from typing import Any

import httpx
import pytest

from tests.conftest import Server, stop_server
from tests.reliability.authz import World, start_world
from tests.spec import spec_document, validate, validate_against

EXAMPLES = int(os.environ.get("HOMEPORT_FUZZ_EXAMPLES", "6"))
SEED = os.environ.get("HOMEPORT_FUZZ_SEED")  # unset: hypothesis's fixed derandomized draws
SERVED_MODELS = {"/embeddings": "fake-embed", "/moderations": "omni-moderation-latest"}  # others: fake-chat


# The spec's path parameters → the fixture's objects (real ids, so requests get past the lookup).
SPEC_PARAMS = {"vector_store_id": "store_id", "file_id": "file_id", "assistant_id": "assistant_id",
               "thread_id": "thread_id", "message_id": "message_id", "run_id": "run_id", "step_id": "step_id",
               "response_id": "response_id", "conversation_id": "conversation_id", "item_id": "item_id",
               "completion_id": "completion_id", "batch_id": "batch_id", "upload_id": "upload_id",
               "project_id": "project_id", "api_key_id": "api_key_id", "key_id": "key_id"}  # fmt: skip

# Where the spec contradicts itself or the live API, Homeport follows the API; each gap is named.
KNOWN_SPEC_GAPS = {
    ("GET /chat/completions/{completion_id}/messages", "'user' is not one of ['assistant']"):
        "the stored request's messages keep their roles; the spec types every item as the reply",
    ("POST /files", "'evals' is not one of"):
        "the upload purposes include `evals`, the file object's enum does not",
    ("POST /embeddings", "'embedding']: '"):
        "with encoding_format base64 the vector is a base64 string, as OpenAI sends it (and the SDK asks for it);"
        " the spec types it as an array only",
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):  # -> World
    found = start_world(tmp_path_factory.mktemp("fuzz"))
    yield found
    stop_server(found.server)


def _routed(spec: dict[str, Any], server: Server) -> dict[str, Any]:
    """The spec's paths and methods that Homeport routes (path parameters may be named differently)."""

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    ours = httpx.get(f"{server.root}/openapi.json").json()["paths"]
    served = {(shape(path), method) for path, ops in ours.items() for method in ops}
    paths = {}
    for path, ops in spec["paths"].items():
        kept = {m: op for m, op in ops.items() if (shape("/v1" + path), m) in served}
        if kept:
            paths[path] = kept | ({"parameters": ops["parameters"]} if "parameters" in ops else {})
    return {**spec, "paths": paths}


def test_fuzz_every_routed_operation(world: World) -> None:
    import schemathesis

    document = _routed(spec_document(), world.server)
    schema = schemathesis.openapi.from_dict(document)
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    operations = 0
    with httpx.Client(base_url=world.server.base_url, timeout=60) as http:
        for found in schema.get_all_operations():
            operation = found.ok()
            operations += 1
            try:
                _attack(operation, world, http, document, statuses, failures)
            except Exception as exc:  # a hang or a refused connection is a failure too
                failures.append(f"{operation.label}: {type(exc).__name__}: {exc}"[:500])
    sent = sum(statuses.values())
    print(f"\nfuzz: {sent} requests over {operations} operations; statuses {dict(sorted(statuses.items()))}")
    assert operations >= 90 and sent >= operations * min(EXAMPLES, 2)
    assert httpx.get(f"{world.server.root}/healthz").status_code == 200  # still serving
    assert failures == [], "\n".join(sorted(set(failures))[:60])


def _attack(operation: Any, world: World, http: httpx.Client, document: dict[str, Any],
            statuses: collections.Counter[int], failures: list[str]) -> None:  # fmt: skip
    """EXAMPLES generated requests to one operation, each answer judged."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    admin = operation.path.startswith(("/organization/projects", "/organization/admin_api_keys"))
    secret = world.keys["admin" if admin else "owner"]
    ids = world.params_for("owner", "/v1" + operation.path)

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])  # fmt: skip
    @given(operation.as_strategy(), st.booleans())
    def attack(case: Any, steer: bool) -> None:
        if steer:  # toward requests that get past the lookups
            if isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = SERVED_MODELS.get(operation.path, "fake-chat")
            for name in case.path_parameters or {}:
                case.path_parameters[name] = ids.get(SPEC_PARAMS.get(name, ""), case.path_parameters[name])
        answer = _send(http, case, secret)
        statuses[answer.status_code] += 1
        problem = _judge(document, operation, answer)
        if problem:
            failures.append(f"{operation.label} → {answer.status_code}: {problem}")

    (seed(int(SEED))(attack) if SEED else attack)()  # a seed overrides derandomize


def _send(http: httpx.Client, case: Any, secret: str | None) -> httpx.Response:
    """The generated request, sent as generated (schemathesis serializes it), with a valid key."""
    kwargs = case.as_transport_kwargs(base_url=str(http.base_url).rstrip("/"))
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
    headers["Authorization"] = f"Bearer {secret}"
    request = http.build_request(kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers,
                                 content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes) else None,
                                 json=kwargs.get("json"), files=kwargs.get("files"),
                                 data=kwargs.get("data") if isinstance(kwargs.get("data"), dict) else None)  # fmt: skip
    return http.send(request)


def _judge(document: dict[str, Any], operation: Any, answer: httpx.Response) -> str | None:
    status, kind = answer.status_code, answer.headers.get("content-type", "")
    if status >= 500:
        return answer.text[:300]
    if status >= 400:
        try:
            validate("ErrorResponse", answer.json())
        except (AssertionError, ValueError) as exc:
            return f"not OpenAI's error shape: {exc}"[:300]
        return None
    if not kind.startswith("application/json"):
        return None  # a stream, or a file's content
    declared = document["paths"][operation.path][operation.method.lower()]["responses"].get(str(status))
    body_schema = ((declared or {}).get("content") or {}).get("application/json", {}).get("schema")
    if body_schema is None:
        return None
    body = answer.json()
    if isinstance(body, dict) and body.get("object") == "list" and body.get("data") == []:
        # OpenAI answers an empty page with first_id/last_id null, where its spec says string.
        body |= {k: "" for k in ("first_id", "last_id") if k in body and body[k] is None}
    try:
        validate_against(body_schema, body, operation.label)
    except AssertionError as exc:
        known = any(label == operation.label and gap in str(exc) for label, gap in KNOWN_SPEC_GAPS)
        return None if known else str(exc)[:300]
    return None
