"""The response cache through the SDK: deterministic requests answered again byte for byte with
`x-cache: hit`, per project, never for streams or sampled requests unless asked; shared by
replicas through Redis; hits recorded as cached tokens."""

from __future__ import annotations

import secrets
import time

import httpx
import openai
import pytest

from tests.conftest import API_KEY, create_key, start_server, stop_server

FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
        {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake"}]  # fmt: skip
ASK = {"model": "fake-chat", "messages": [{"role": "user", "content": "cache me"}], "max_tokens": 6}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(tmp_path_factory.mktemp("cache"), {"models": FAKE})
    yield srv
    stop_server(srv)


def _post(server, secret: str, body: dict, **headers: str) -> httpx.Response:
    r = httpx.post(f"{server.base_url}/chat/completions", json=body,
                   headers={"Authorization": f"Bearer {secret}", **headers})  # fmt: skip
    assert r.status_code == 200, r.text
    return r


def test_deterministic_requests_hit_identical_bodies_per_project(server) -> None:
    body = ASK | {"temperature": 0}
    first, second = _post(server, API_KEY, body), _post(server, API_KEY, body)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.content == second.content  # the same id, created, usage: byte for byte
    other = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "o", "--project", "other")
    assert _post(server, other, body).headers["x-cache"] == "miss"  # projects never share entries

    seeded = ASK | {"seed": 4, "temperature": 0.9}
    assert [_post(server, API_KEY, seeded).headers["x-cache"] for _ in range(2)] == ["miss", "hit"]
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    raw = client.embeddings.with_raw_response.create(model="fake-embed", input="same text")
    again = client.embeddings.with_raw_response.create(model="fake-embed", input="same text")
    assert (raw.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
    assert again.parse().data[0].embedding == raw.parse().data[0].embedding


def test_sampled_and_streamed_requests_are_not_cached_unless_asked(server) -> None:
    sampled = ASK | {"temperature": 0.8, "messages": [{"role": "user", "content": "sampled"}]}
    assert "x-cache" not in _post(server, API_KEY, sampled).headers
    assert _post(server, API_KEY, sampled, **{"x-homeport-cache": "on"}).headers["x-cache"] == "miss"
    assert _post(server, API_KEY, sampled, **{"x-homeport-cache": "on"}).headers["x-cache"] == "hit"
    fixed = ASK | {"temperature": 0, "messages": [{"role": "user", "content": "opt out"}]}
    assert "x-cache" not in _post(server, API_KEY, fixed, **{"x-homeport-cache": "off"}).headers
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=fixed | {"stream": True},
                      headers={"Authorization": f"Bearer {API_KEY}"}) as r:  # fmt: skip
        assert "x-cache" not in r.headers
        r.read()


def test_hits_are_recorded_as_cached_tokens(server) -> None:
    secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "u", "--project", "usage-cache")
    body = ASK | {"temperature": 0, "messages": [{"role": "user", "content": "count me"}]}
    prompt = _post(server, secret, body).json()["usage"]["prompt_tokens"]
    _post(server, secret, body)
    time.sleep(1.2)
    r = httpx.get(f"{server.base_url}/organization/usage/completions", headers={"Authorization": f"Bearer {secret}"},
                  params={"start_time": int(time.time()) - 600})  # fmt: skip
    result = [x for b in r.json()["data"] for x in b["results"]][0]
    assert result["num_model_requests"] == 2 and result["input_cached_tokens"] == prompt


def test_replicas_share_the_cache_through_redis(tmp_path) -> None:
    env = {"HOMEPORT_REDIS_URL": "redis://127.0.0.1:6379/0", "HOMEPORT_REDIS_PREFIX": f"hp-{secrets.token_hex(4)}"}
    try:
        import redis

        redis.from_url(env["HOMEPORT_REDIS_URL"]).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Redis not reachable: {exc}")
    a = start_server(tmp_path / "a", {"models": FAKE}, env=env)
    b = start_server(tmp_path / "b", {"models": FAKE}, env=env)
    try:
        body = ASK | {"temperature": 0, "messages": [{"role": "user", "content": "shared"}]}
        first = _post(a, API_KEY, body)
        second = _post(b, API_KEY, body)
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
        assert first.content == second.content
    finally:
        stop_server(a)
        stop_server(b)


def test_stateless_responses_are_cached_stored_ones_never(server) -> None:
    def respond(**fields) -> httpx.Response:  # type: ignore[no-untyped-def]
        body = {"model": "fake-chat", "input": "cache me", "temperature": 0} | fields
        r = httpx.post(f"{server.base_url}/responses", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        assert r.status_code == 200, r.text
        return r

    first, second = respond(store=False), respond(store=False)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert first.content == second.content
    stored = [respond() for _ in range(2)]  # stored (the default): each is its own response, with its own id
    assert all("x-cache" not in r.headers for r in stored) and stored[0].json()["id"] != stored[1].json()["id"]
