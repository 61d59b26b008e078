"""The response cache: an exact-match cache of whole non-streaming responses.

Only requests whose answer is fixed are cached — embeddings, and chat/completions with
`temperature` 0 or a `seed` (and one choice) — unless the client asks with the header
`x-homeport-cache: on` (or opts out with `off`). The key is a hash of the project and the
request as sent, so projects never see each other's entries. In-process (LRU, TTL) by default;
in Redis (shared by replicas) with `redis_url`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

from .limits import REDIS_UNREACHABLE

__all__ = ["ResponseCache", "MemoryCache", "RedisCache", "cache_key"]

log = logging.getLogger(__name__)


class ResponseCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


def cache_key(project_id: str | None, family: str, body: Any, header: str | None) -> str | None:
    """The entry's key, or None when this request must not be cached."""
    if header == "off" or getattr(body, "stream", False):
        return None
    request = body.model_dump(mode="json", exclude_unset=True, by_alias=True)
    fixed = family == "embeddings" or (
        (request.get("temperature") == 0 or request.get("seed") is not None) and request.get("n", 1) == 1
    )
    if not fixed and header != "on":
        return None
    text = json.dumps([project_id, family, request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class MemoryCache:
    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self._ttl_s, self._max = ttl_s, max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None or found[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        self._entries.move_to_end(key)
        return found[1]

    async def set(self, key: str, value: bytes) -> None:
        self._entries[key] = (time.monotonic() + self._ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        return None


class RedisCache:
    def __init__(self, url: str, prefix: str, ttl_s: float) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._prefix, self._ttl_s = f"{prefix}:cache:", ttl_s

    async def get(self, key: str) -> bytes | None:
        """None when missing, or while Redis is unreachable (the request runs, uncached)."""
        try:
            found = await self._redis.get(self._prefix + key)
        except REDIS_UNREACHABLE as exc:
            log.warning("response cache unreachable: %s", exc)
            return None
        return found if isinstance(found, bytes) or found is None else str(found).encode()

    async def set(self, key: str, value: bytes) -> None:
        try:
            await self._redis.set(self._prefix + key, value, ex=max(1, int(self._ttl_s)))
        except REDIS_UNREACHABLE as exc:
            log.warning("response cache unreachable: %s", exc)

    async def close(self) -> None:
        await self._redis.aclose()
