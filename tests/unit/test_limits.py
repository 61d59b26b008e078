"""Rate limiters: exact admission within a window, token settling, OpenAI header formats."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from homeport.errors import RateLimited
from homeport.services.platform.limits import (
    DAY_S,
    WINDOW_S,
    Limit,
    MemoryRateLimiter,
    RedisRateLimiter,
    Scope,
    _duration,
    ratelimit_headers,
)


@pytest.fixture(params=["memory", "redis"])
async def limiter(request):
    if WINDOW_S - time.time() % WINDOW_S < 2:  # counts are per minute: don't straddle a boundary
        await asyncio.sleep(2.1)
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    redis = pytest.importorskip("redis.asyncio")
    try:
        await redis.from_url("redis://127.0.0.1:6379/0").ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"Redis not reachable on 127.0.0.1:6379: {exc}")
    limiter = RedisRateLimiter("redis://127.0.0.1:6379/0", prefix=f"hp-test-{secrets.token_hex(4)}")
    yield limiter
    await limiter.close()


@pytest.mark.anyio
async def test_exactly_rpm_requests_are_admitted_concurrently(limiter) -> None:
    results = await asyncio.gather(
        *(limiter.reserve([Scope("k1", 7, None)], 0) for _ in range(20)), return_exceptions=True
    )
    admitted = [r for r in results if not isinstance(r, BaseException)]
    rejected = [r for r in results if isinstance(r, RateLimited)]
    assert len(admitted) == 7 and len(rejected) == 13
    assert 0 < rejected[0].retry_after <= 60
    assert rejected[0].headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.anyio
async def test_tokens_are_reserved_then_settled(limiter) -> None:
    first = await limiter.reserve([Scope("k2", None, 100)], 80)
    with pytest.raises(RateLimited) as err:
        await limiter.reserve([Scope("k2", None, 100)], 30)  # 80 + 30 > 100
    assert "tokens" in err.value.message
    await limiter.settle(first, 20)  # the request really used 20
    second = await limiter.reserve([Scope("k2", None, 100)], 30)
    assert second.scopes[0].tokens_used == 50
    headers = ratelimit_headers(second)
    assert headers["x-ratelimit-limit-tokens"] == "100" and headers["x-ratelimit-remaining-tokens"] == "50"
    assert "x-ratelimit-limit-requests" not in headers


@pytest.mark.anyio
async def test_a_rejected_request_takes_nothing(limiter) -> None:
    await limiter.reserve([Scope("k3", 2, 10)], 10)
    with pytest.raises(RateLimited):
        await limiter.reserve([Scope("k3", 2, 10)], 1)  # tokens full: the request is not counted either
    r = await limiter.reserve([Scope("k3", 2, 10)], 0)
    assert r.scopes[0].requests_used == 2


@pytest.mark.anyio
async def test_all_scopes_or_none(limiter) -> None:
    # Two keys of one project: the project's limit (3) binds before either key's (5).
    project = lambda: Scope("project:p", 3, None)  # noqa: E731
    for key in ("a", "b", "a"):
        await limiter.reserve([Scope(f"key:{key}", 5, None), project()], 0)
    with pytest.raises(RateLimited) as err:
        await limiter.reserve([Scope("key:b", 5, None), project()], 0)
    assert "project" in err.value.message
    # The refused request took nothing from key b either: b has used 1 of its 5.
    r = await limiter.reserve([Scope("key:b", 5, None)], 0)
    assert r.scopes[0].requests_used == 2


@pytest.mark.anyio
async def test_day_limits_count_beside_minute_limits(limiter) -> None:
    limit = Limit("project", "p9", "m", rpm=10, rpd=2)
    assert [s.window_s for s in limit.scopes()] == [WINDOW_S, DAY_S]
    for _ in range(2):
        await limiter.reserve(limit.scopes(), 0)
    with pytest.raises(RateLimited) as err:
        await limiter.reserve(limit.scopes(), 0)
    assert "requests per day on this project for model m" in err.value.message
    until_midnight = DAY_S - time.time() % DAY_S
    assert abs(err.value.retry_after - max(1.0, until_midnight)) < 2  # the true wait (the SDK won't sleep > 60 s)
    # The tightest scope names the headers: 0 of 2 a day left, resetting at midnight UTC (hours away).
    assert err.value.headers["x-ratelimit-limit-requests"] == "2"
    assert err.value.headers["x-ratelimit-remaining-requests"] == "0"
    reset = err.value.headers["x-ratelimit-reset-requests"]
    assert reset.endswith("s") and (time.time() % DAY_S > DAY_S - 3600 or "h" in reset)


def test_duration_format() -> None:
    assert _duration(0.012) == "12ms" and _duration(1.2) == "2s" and _duration(59) == "59s" and _duration(61) == "1m1s"
    assert _duration(3 * 3600 + 5) == "3h0m5s"
