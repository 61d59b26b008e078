"""Rate limits: requests and tokens per minute, per key and per project, exact across replicas.

Counting is per fixed one-minute window. A request reserves one request and its token
estimate (prompt + max output) in every scope that limits it (its key, its project) at once:
all fit or nothing is taken. Tokens are settled with the real count when it ends. In-process
counters serve one instance; with `redis_url` the same check-and-take is one Lua script in
Redis, so N replicas share one budget (the limit holds exactly, not limit × replicas).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from ..errors import RateLimited

__all__ = ["Scope", "Reservation", "RateLimiter", "MemoryRateLimiter", "RedisRateLimiter", "ratelimit_headers"]

WINDOW_S = 60


@dataclass
class Scope:
    """One set of limits, e.g. `key:key_…` or `project:proj_…`, and (after reserving) its use."""

    name: str
    rpm: int | None
    tpm: int | None
    requests_used: int = 0
    tokens_used: int = 0


@dataclass
class Reservation:
    scopes: list[Scope]
    window: int
    tokens: int

    def reset_s(self) -> float:
        return max(0.0, (self.window + 1) * WINDOW_S - time.time())


class RateLimiter(Protocol):
    async def reserve(self, scopes: list[Scope], tokens: int) -> Reservation:
        """Take one request and `tokens` in every scope, or raise RateLimited (Retry-After, headers)."""
        ...

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Give back (or take more of) the token estimate once the real count is known."""
        ...

    async def close(self) -> None: ...


def ratelimit_headers(r: Reservation) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for the tightest scope of each kind."""
    reset = _duration(r.reset_s())
    headers = {}
    for kind, limit_of, used_of in (
        ("requests", lambda s: s.rpm, lambda s: s.requests_used),
        ("tokens", lambda s: s.tpm, lambda s: s.tokens_used),
    ):
        left = [(limit_of(s), limit_of(s) - used_of(s)) for s in r.scopes if limit_of(s) is not None]
        if left:
            limit, remaining = min(left, key=lambda pair: pair[1])
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, remaining))
            headers[f"x-ratelimit-reset-{kind}"] = reset
    return headers


def _duration(seconds: float) -> str:
    """OpenAI writes resets like `1s`, `6m0s`, `12ms`."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def _rejected(r: Reservation, scope: Scope, what: str) -> RateLimited:
    limit = scope.rpm if what == "requests" else scope.tpm
    owner = scope.name.split(":", 1)[0]  # key | project
    err = RateLimited(
        f"Rate limit reached for {what} per minute on this {owner} (limit {limit}). "
        f"Please try again in {_duration(r.reset_s())}.",
        retry_after=max(1.0, r.reset_s()),
    )
    err.headers = ratelimit_headers(r)
    return err


def _over(scope: Scope, tokens: int) -> str | None:
    if scope.rpm is not None and scope.requests_used + 1 > scope.rpm:
        return "requests"
    if scope.tpm is not None and scope.tokens_used + tokens > scope.tpm:
        return "tokens"
    return None


class MemoryRateLimiter:
    """One process's counters. The event loop runs check-and-take without a break: atomic."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], list[int]] = {}

    async def reserve(self, scopes: list[Scope], tokens: int) -> Reservation:
        window = int(time.time() // WINDOW_S)
        self._forget_before(window)
        counts = [self._counts.setdefault((s.name, window), [0, 0]) for s in scopes]
        for scope, (req, tok) in zip(scopes, counts, strict=True):
            scope.requests_used, scope.tokens_used = req, tok
        r = Reservation(scopes, window, tokens)
        for scope in scopes:
            if (what := _over(scope, tokens)) is not None:
                raise _rejected(r, scope, what)
        for scope, count in zip(scopes, counts, strict=True):
            count[0] += 1
            count[1] += tokens
            scope.requests_used, scope.tokens_used = count
        return r

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        for scope in reservation.scopes:
            counts = self._counts.get((scope.name, reservation.window))
            if counts is not None:
                counts[1] += actual_tokens - reservation.tokens

    def _forget_before(self, window: int) -> None:
        for key in [k for k in self._counts if k[1] < window]:
            del self._counts[key]

    async def close(self) -> None:
        return None


# KEYS: per scope, its requests and tokens counters. ARGV: tokens, ttl, then per scope rpm and
# tpm (-1: none). Returns {failing scope (1-based) or 0, 1 (requests) | 2 (tokens) | 0,
# then per scope its requests and tokens used}.
_RESERVE = """
local n = #KEYS / 2
local want, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local used = {}
for i = 1, n do
  used[2*i-1] = tonumber(redis.call('GET', KEYS[2*i-1]) or '0')
  used[2*i] = tonumber(redis.call('GET', KEYS[2*i]) or '0')
end
for i = 1, n do
  local rpm, tpm = tonumber(ARGV[1 + 2*i]), tonumber(ARGV[2 + 2*i])
  if rpm >= 0 and used[2*i-1] + 1 > rpm then return {i, 1, unpack(used)} end
  if tpm >= 0 and used[2*i] + want > tpm then return {i, 2, unpack(used)} end
end
for i = 1, n do
  used[2*i-1] = redis.call('INCR', KEYS[2*i-1])
  used[2*i] = redis.call('INCRBY', KEYS[2*i], want)
  redis.call('EXPIRE', KEYS[2*i-1], ttl)
  redis.call('EXPIRE', KEYS[2*i], ttl)
end
return {0, 0, unpack(used)}
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

    async def reserve(self, scopes: list[Scope], tokens: int) -> Reservation:
        window = int(time.time() // WINDOW_S)
        keys = [k for s in scopes for k in self._keys(s.name, window)]
        args = [tokens, WINDOW_S * 2]
        for s in scopes:
            args += [-1 if s.rpm is None else s.rpm, -1 if s.tpm is None else s.tpm]
        failing, what, *used = await self._script(keys=keys, args=args)
        for i, scope in enumerate(scopes):
            scope.requests_used, scope.tokens_used = int(used[2 * i]), int(used[2 * i + 1])
        r = Reservation(scopes, window, tokens)
        if failing:
            raise _rejected(r, scopes[failing - 1], "requests" if what == 1 else "tokens")
        return r

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        if actual_tokens != reservation.tokens:
            for scope in reservation.scopes:
                key = self._keys(scope.name, reservation.window)[1]
                await self._redis.incrby(key, actual_tokens - reservation.tokens)

    async def close(self) -> None:
        await self._redis.aclose()
