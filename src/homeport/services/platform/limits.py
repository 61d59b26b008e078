"""Rate limits: requests and tokens per minute and per day, exact across replicas.

A scope is one counter pair (requests, tokens) over fixed windows of `window_s`: e.g. a
key's per-minute limits for every model, or a project's per-day limits for one model. A
request reserves one request and its token estimate (prompt + max output) in every scope
that limits it at once: all fit or nothing is taken. Tokens are settled with the real count
when it ends. In-process counters serve one instance; with `redis_url` the same
check-and-take is one Lua script in Redis, so N replicas share one budget (the limit holds
exactly, not limit × replicas).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...errors import RateLimited, StorageUnavailable

__all__ = ["Limit", "Scope", "Reservation", "RateLimiter", "MemoryRateLimiter", "RedisRateLimiter", "REDIS_UNREACHABLE",
           "ratelimit_headers"]

log = logging.getLogger(__name__)

REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
"""What a call to Redis raises when Redis is down or unreachable."""

WINDOW_S = 60
DAY_S = 86400


@dataclass
class Scope:
    """One set of limits, e.g. `key:key_…:*:1m`, and (after reserving) its use in the current window."""

    name: str
    max_requests: int | None
    max_tokens: int | None
    window_s: int = WINDOW_S
    about: str = ""
    """How a rejection names it, e.g. `this project for model x`."""
    requests_used: int = 0
    tokens_used: int = 0
    window: int = 0

    def reset_s(self) -> float:
        return max(0.0, (self.window + 1) * self.window_s - time.time())

    def start(self, now: float) -> None:
        self.window = int(now // self.window_s)

    @property
    def per(self) -> str:
        return "day" if self.window_s == DAY_S else "minute"


@dataclass(frozen=True)
class Limit:
    """The configured limits of one key or project on one model (`*`: every model); None: no limit."""

    owner: str  # key | project
    owner_id: str
    model: str = "*"
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    batch_tpd: int | None = None
    """Input tokens its batches may enqueue per day (services/batches); not a rate limit of calls."""

    def applies_to(self, model: str) -> bool:
        return self.model in ("*", model)

    def scopes(self) -> list[Scope]:
        about = f"this {self.owner}" + ("" if self.model == "*" else f" for model {self.model}")
        name = f"{self.owner}:{self.owner_id}:{self.model}"
        scopes = []
        if self.rpm is not None or self.tpm is not None:
            scopes.append(Scope(f"{name}:1m", self.rpm, self.tpm, WINDOW_S, about))
        if self.rpd is not None or self.tpd is not None:
            scopes.append(Scope(f"{name}:1d", self.rpd, self.tpd, DAY_S, about))
        return scopes


@dataclass
class Reservation:
    scopes: list[Scope]
    tokens: int


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
    headers = {}
    for kind, limit_of, used_of in (
        ("requests", lambda s: s.max_requests, lambda s: s.requests_used),
        ("tokens", lambda s: s.max_tokens, lambda s: s.tokens_used),
    ):
        left = [(limit_of(s) - used_of(s), s) for s in r.scopes if limit_of(s) is not None]
        if left:
            remaining, scope = min(left, key=lambda pair: pair[0])
            headers[f"x-ratelimit-limit-{kind}"] = str(limit_of(scope))
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, remaining))
            headers[f"x-ratelimit-reset-{kind}"] = _duration(scope.reset_s())
    return headers


def _duration(seconds: float) -> str:
    """OpenAI writes resets like `1s`, `6m0s`, `12ms` (and hours as `2h3m4s`)."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    hours, minutes, secs = whole // 3600, whole % 3600 // 60, whole % 60
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _rejected(r: Reservation, scope: Scope, what: str) -> RateLimited:
    limit = scope.max_requests if what == "requests" else scope.max_tokens
    about = scope.about or "this " + scope.name.split(":", 1)[0]
    wait = scope.reset_s()
    err = RateLimited(
        f"Rate limit reached for {what} per {scope.per} on {about} (limit {limit}). "
        f"Please try again in {_duration(wait)}.",
        # The true wait. The SDK sleeps on Retry-After only up to 60 s; past that (a day limit) it
        # retries briefly and then raises RateLimitError instead of hanging for hours.
        retry_after=max(1.0, wait),
    )
    err.headers = ratelimit_headers(r)
    return err


def _over(scope: Scope, tokens: int) -> str | None:
    if scope.max_requests is not None and scope.requests_used + 1 > scope.max_requests:
        return "requests"
    if scope.max_tokens is not None and scope.tokens_used + tokens > scope.max_tokens:
        return "tokens"
    return None


class MemoryRateLimiter:
    """One process's counters. The event loop runs check-and-take without a break: atomic."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], list[int]] = {}
        self._expiry: dict[tuple[str, int], float] = {}

    async def reserve(self, scopes: list[Scope], tokens: int) -> Reservation:
        now = time.time()
        self._forget_expired(now)
        counts = []
        for scope in scopes:
            scope.start(now)
            counter = (scope.name, scope.window)
            if counter not in self._counts:
                self._counts[counter] = [0, 0]
                self._expiry[counter] = (scope.window + 1) * scope.window_s
            counts.append(self._counts[counter])
        for scope, (req, tok) in zip(scopes, counts, strict=True):
            scope.requests_used, scope.tokens_used = req, tok
        r = Reservation(scopes, tokens)
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
            counts = self._counts.get((scope.name, scope.window))
            if counts is not None:
                counts[1] += actual_tokens - reservation.tokens

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, end in self._expiry.items() if end <= now]:
            del self._counts[key], self._expiry[key]

    async def close(self) -> None:
        return None


# KEYS: per scope, its requests and tokens counters. ARGV: tokens, then per scope its max
# requests, max tokens (-1: none) and the counters' time to live.
# Returns {failing scope (1-based) or 0, 1 (requests) | 2 (tokens) | 0,
# then per scope its requests and tokens used}.
_RESERVE = """
local n = #KEYS / 2
local want = tonumber(ARGV[1])
local used = {}
for i = 1, n do
  used[2*i-1] = tonumber(redis.call('GET', KEYS[2*i-1]) or '0')
  used[2*i] = tonumber(redis.call('GET', KEYS[2*i]) or '0')
end
for i = 1, n do
  local max_requests, max_tokens = tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  if max_requests >= 0 and used[2*i-1] + 1 > max_requests then return {i, 1, unpack(used)} end
  if max_tokens >= 0 and used[2*i] + want > max_tokens then return {i, 2, unpack(used)} end
end
for i = 1, n do
  used[2*i-1] = redis.call('INCR', KEYS[2*i-1])
  used[2*i] = redis.call('INCRBY', KEYS[2*i], want)
  redis.call('EXPIRE', KEYS[2*i-1], ARGV[3*i+1])
  redis.call('EXPIRE', KEYS[2*i], ARGV[3*i+1])
end
return {0, 0, unpack(used)}
"""


class RedisRateLimiter:
    """Counters in Redis, shared by every replica; one Lua script checks and takes atomically.

    While Redis is unreachable, `when_down` decides: "closed" refuses requests that have limits
    (503 storage_unavailable, Retry-After), "open" lets them through unchecked (logged)."""

    def __init__(self, url: str, prefix: str = "homeport", when_down: Literal["closed", "open"] = "closed") -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._prefix = prefix
        self._script = self._redis.register_script(_RESERVE)
        self._when_down = when_down

    def _keys(self, scope: Scope) -> list[str]:
        base = f"{self._prefix}:rl:{scope.name}:{scope.window}"
        return [f"{base}:req", f"{base}:tok"]

    async def reserve(self, scopes: list[Scope], tokens: int) -> Reservation:
        now = time.time()
        args = [tokens]
        for s in scopes:
            s.start(now)
            none = -1
            args += [none if s.max_requests is None else s.max_requests, none if s.max_tokens is None else s.max_tokens]
            args.append(s.window_s * 2)
        keys = [k for s in scopes for k in self._keys(s)]
        try:
            failing, what, *used = await self._script(keys=keys, args=args)
        except REDIS_UNREACHABLE as exc:
            if self._when_down == "closed":
                raise StorageUnavailable("Rate limits cannot be checked now; retry shortly.", retry_after=1) from exc
            log.warning("Redis unreachable; a request passed its rate limits unchecked: %s", exc)
            return Reservation([], tokens)  # nothing taken, nothing to settle
        for i, scope in enumerate(scopes):
            scope.requests_used, scope.tokens_used = int(used[2 * i]), int(used[2 * i + 1])
        r = Reservation(scopes, tokens)
        if failing:
            raise _rejected(r, scopes[failing - 1], "requests" if what == 1 else "tokens")
        return r

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        if actual_tokens != reservation.tokens:
            try:
                for scope in reservation.scopes:
                    key = self._keys(scope)[1]
                    await self._redis.incrby(key, actual_tokens - reservation.tokens)
            except REDIS_UNREACHABLE as exc:  # the window's count stays at the estimate
                log.warning("Redis unreachable; a request's tokens were not settled: %s", exc)

    async def close(self) -> None:
        await self._redis.aclose()
