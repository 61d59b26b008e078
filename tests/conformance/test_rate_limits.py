"""Rate limits through the SDK; and exact limits across 3 replicas on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import secrets
import time

import httpx
import openai
import pytest

from tests.conftest import create_key, homeport_cli, launch_server, stop_server, wait_ready
from tests.spec import validate

# Priced so that a request (20 prompt + 5 output tokens) costs $0.02 + $0.01 = $0.03.
FAKE_MODELS = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake",
                "input_price": 1000.0, "output_price": 2000.0}]  # fmt: skip
ASK = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def _burst(servers: list, secrets_: list[str], n: int) -> list[int]:
    """`n` concurrent chat requests, round-robin over the replicas and the keys; their statuses."""

    async def run() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as http:
            calls = [
                http.post(f"{servers[i % len(servers)].base_url}/chat/completions", json=ASK,
                          headers={"Authorization": f"Bearer {secrets_[i % len(secrets_)]}"})
                for i in range(n)
            ]  # fmt: skip
            return [r.status_code for r in await asyncio.gather(*calls)]

    return asyncio.run(run())


def _wait_for_fresh_window(margin: float = 15) -> None:
    """Limits count per clock minute: start a burst well inside one."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def test_limited_key_gets_headers_then_429(server) -> None:
    env = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    secret = create_key(env, "--name", "limited", "--project", "demo", "--rpm", "3")
    _wait_for_fresh_window(5)
    client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
    for expected_remaining in ("2", "1", "0"):
        raw = client.chat.completions.with_raw_response.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-remaining-requests"] == expected_remaining
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(model="smollm2-135m-instruct", messages=[{"role": "user", "content": "hi"}])
    validate("ErrorResponse", err.value.response.json())
    assert err.value.code == "rate_limit_exceeded"
    assert 1 <= int(err.value.response.headers["retry-after"]) <= 60


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory):
    """Three Homeport processes sharing a fresh PostgreSQL database and one Redis."""
    asyncpg = pytest.importorskip("asyncpg")
    db = f"homeport_replicas_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test", timeout=3)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f"CREATE DATABASE {db}"))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    env = {
        "HOMEPORT_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}",
        "HOMEPORT_REDIS_URL": "redis://127.0.0.1:6379/0",
        "HOMEPORT_REDIS_PREFIX": f"hp-test-{secrets.token_hex(4)}",
    }
    servers = []
    try:
        for i in range(3):  # started together: their migrations must not collide
            servers.append(launch_server(tmp_path_factory.mktemp(f"replica{i}"), {"models": FAKE_MODELS}, env=env))
        for server in servers:
            wait_ready(server)
        yield servers, env
    finally:
        for s in servers:
            stop_server(s)
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))


def test_limit_is_exact_across_three_replicas(replicas) -> None:
    servers, env = replicas
    secret = create_key(env, "--name", "shared", "--project", "p1", "--rpm", "10")
    _wait_for_fresh_window()

    codes = _burst(servers, [secret], 30)
    assert codes.count(200) == 10 and codes.count(429) == 20  # not 10 × 3 replicas
    # Usage recorded by all three replicas adds up, read from any of them.
    time.sleep(1.5)
    for server in servers:
        r = httpx.get(f"{server.base_url}/organization/usage/completions",
                      params={"start_time": int(time.time()) - 600, "bucket_width": "1h"},
                      headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
        assert sum(res["num_model_requests"] for b in r.json()["data"] for res in b["results"]) == 10


def test_key_created_and_revoked_anywhere_holds_everywhere(replicas) -> None:
    servers, env = replicas
    secret = create_key(env, "--name", "temp")
    for server in servers:
        with openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0) as client:
            assert client.models.list().data
    listed = homeport_cli(env, "keys", "list")
    key_id = next(line.split()[0] for line in listed.splitlines() if line.endswith(" temp"))
    homeport_cli(env, "keys", "revoke", key_id)
    time.sleep(1.1)  # replicas trust a valid key for up to key_cache_s (1 s)
    for server in servers:
        with openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError):
                client.models.list()


def test_budget_is_never_overshot_across_replicas(replicas) -> None:
    servers, env = replicas
    # Each request reserves 20 prompt + 5 output tokens and uses exactly that (fake engine).
    secret = create_key(env, "--name", "budgeted", "--budget-tokens", "250")

    codes = _burst(servers, [secret], 30)
    assert codes.count(200) == 10 and codes.count(429) == 20

    def refusals() -> float:
        text = httpx.get(f"{servers[0].root}/metrics").text
        lines = [
            ln for ln in text.splitlines() if ln.startswith('homeport_rate_limited_total{reason="insufficient_quota"}')
        ]
        return float(lines[0].split()[-1]) if lines else 0.0

    before = refusals()
    with openai.OpenAI(base_url=servers[0].base_url, api_key=secret) as client:  # default: 2 retries
        with pytest.raises(openai.RateLimitError) as err:
            client.chat.completions.create(**ASK)
    assert err.value.code == "insufficient_quota"
    assert err.value.response.headers["x-should-retry"] == "false"
    assert refusals() - before == 1  # the SDK did not retry


def test_project_limit_is_shared_by_its_keys_across_replicas(replicas) -> None:
    servers, env = replicas
    homeport_cli(env, "limits", "set", "--project", "team", "--rpm", "6")
    secrets_ = [create_key(env, "--name", f"team-{i}", "--project", "team") for i in range(3)]
    _wait_for_fresh_window()

    codes = _burst(servers, secrets_, 18)
    assert codes.count(200) == 6 and codes.count(429) == 12  # one budget for the three keys


def test_cost_budget_is_never_overshot_across_replicas(replicas) -> None:
    servers, env = replicas
    secret = create_key(env, "--name", "priced", "--budget-usd", "0.3")  # 10 requests of $0.03

    codes = _burst(servers, [secret], 30)
    assert codes.count(200) == 10 and codes.count(429) == 20


def test_per_model_day_limit_holds_across_replicas(replicas) -> None:
    servers, env = replicas
    homeport_cli(env, "limits", "set", "--project", "daily", "--model", "fake-chat", "--rpd", "5")
    secret = create_key(env, "--name", "daily-key", "--project", "daily")
    codes = _burst(servers, [secret], 15)
    assert codes.count(200) == 5 and codes.count(429) == 10
