"""Rate limits: requests and tokens per minute, exact across replicas.

Counting is per fixed one-minute window. A request reserves one request and its token
estimate (prompt + max output) atomically — both fit or neither is taken — and settles the
tokens with the real count when it ends. In-process counters serve one instance; with
`redis_url` the same check-and-take is one Lua script in Redis, so N replicas share one
budget (the limit holds exactly, not limit × replicas).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from ..errors import RateLimited

__all__ = ["Reservation", "RateLimiter", "MemoryRateLimiter", "RedisRateLimiter", "ratelimit_headers"]

WINDOW_S = 60


@dataclass
class Reservation:
    scope: str
    window: int
    tokens: int
    rpm: int | None
    tpm: int | None
    requests_used: int
    tokens_used: int

    def reset_s(self) -> float:
        return max(0.0, (self.window + 1) * WINDOW_S - time.time())


class RateLimiter(Protocol):
    async def reserve(self, scope: str, rpm: int | None, tpm: int | None, tokens: int) -> Reservation:
        """Take one request and `tokens`, or raise RateLimited (with Retry-After and headers)."""
        ...

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Give back (or take more of) the token estimate once the real count is known."""
        ...

    async def close(self) -> None: ...


def ratelimit_headers(r: Reservation) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the limits that apply."""
    reset = _duration(r.reset_s())
    headers = {}
    if r.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(r.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, r.rpm - r.requests_used))
        headers["x-ratelimit-reset-requests"] = reset
    if r.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(r.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, r.tpm - r.tokens_used))
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


def _duration(seconds: float) -> str:
    """OpenAI writes resets like `1s`, `6m0s`, `12ms`."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def _rejected(r: Reservation, what: str) -> RateLimited:
    limit = r.rpm if what == "requests" else r.tpm
    err = RateLimited(
        f"Rate limit reached for {what} per minute (limit {limit}). Please try again in {_duration(r.reset_s())}.",
        retry_after=max(1.0, r.reset_s()),
    )
    err.headers = ratelimit_headers(r)
    return err


class MemoryRateLimiter:
    """One process's counters. The event loop runs check-and-take without a break: atomic."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], list[int]] = {}

    async def reserve(self, scope: str, rpm: int | None, tpm: int | None, tokens: int) -> Reservation:
        window = int(time.time() // WINDOW_S)
        self._forget_before(window)
        counts = self._counts.setdefault((scope, window), [0, 0])
        r = Reservation(scope, window, tokens, rpm, tpm, counts[0], counts[1])
        if rpm is not None and counts[0] + 1 > rpm:
            raise _rejected(r, "requests")
        if tpm is not None and counts[1] + tokens > tpm:
            raise _rejected(r, "tokens")
        counts[0] += 1
        counts[1] += tokens
        r.requests_used, r.tokens_used = counts[0], counts[1]
        return r

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        counts = self._counts.get((reservation.scope, reservation.window))
        if counts is not None:
            counts[1] += actual_tokens - reservation.tokens

    def _forget_before(self, window: int) -> None:
        for key in [k for k in self._counts if k[1] < window]:
            del self._counts[key]

    async def close(self) -> None:
        return None


# KEYS: requests counter, tokens counter. ARGV: rpm (-1: none), tpm (-1: none), tokens, ttl.
# Returns {0|1|2 (ok | over requests | over tokens), requests used, tokens used}.
_RESERVE = """
local req = tonumber(redis.call('GET', KEYS[1]) or '0')
local tok = tonumber(redis.call('GET', KEYS[2]) or '0')
local rpm, tpm, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm >= 0 and req + 1 > rpm then return {1, req, tok} end
if tpm >= 0 and tok + want > tpm then return {2, req, tok} end
req = redis.call('INCR', KEYS[1])
tok = redis.call('INCRBY', KEYS[2], want)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {0, req, tok}
"""


class RedisRateLimiter:
    """Counters in Redis, shared by every replica; one Lua script checks and takes atomically."""

    def __init__(self, url: str, prefix: str = "homeport") -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._prefix = prefix
        self._script = self._redis.register_script(_RESERVE)

    def _keys(self, scope: str, window: int) -> list[str]:
        base = f"{self._prefix}:rl:{scope}:{window}"
        return [f"{base}:req", f"{base}:tok"]

    async def reserve(self, scope: str, rpm: int | None, tpm: int | None, tokens: int) -> Reservation:
        window = int(time.time() // WINDOW_S)
        args = [-1 if rpm is None else rpm, -1 if tpm is None else tpm, tokens, WINDOW_S * 2]
        verdict, used_req, used_tok = await self._script(keys=self._keys(scope, window), args=args)
        r = Reservation(scope, window, tokens, rpm, tpm, int(used_req), int(used_tok))
        if verdict == 1:
            raise _rejected(r, "requests")
        if verdict == 2:
            raise _rejected(r, "tokens")
        return r

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        if actual_tokens != reservation.tokens:
            key = self._keys(reservation.scope, reservation.window)[1]
            await self._redis.incrby(key, actual_tokens - reservation.tokens)

    async def close(self) -> None:
        await self._redis.aclose()
