"""Run events to streaming requests: in-process, and across replicas through Redis pub/sub."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ...ids import new_id

__all__ = ["RunEvents"]

log = logging.getLogger(__name__)


class RunEvents:
    """Fan-out of run events to streaming requests: in-process, and through Redis pub/sub when
    replicas share one (a run's pass may execute on any replica's worker). Events of one run come
    from one worker at a time, published in order on one connection, so they arrive in order."""

    def __init__(self, redis_url: str | None = None, prefix: str = "homeport:") -> None:
        self._subscribers: dict[str, list[asyncio.Queue[tuple[str, Any] | None]]] = {}
        self._redis_url, self._channel = redis_url, f"{prefix}run-events"
        self._origin = new_id("")  # this process: its own events come back from Redis; skip them
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._redis_url is None:
            return
        from redis.asyncio import Redis

        self._redis = Redis.from_url(self._redis_url)
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._channel)
        self._tasks = [asyncio.create_task(self._send()), asyncio.create_task(self._receive(pubsub))]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tasks:
            await self._redis.aclose()

    async def _send(self) -> None:
        while True:
            message = await self._outbox.get()
            try:
                await self._redis.publish(self._channel, message)
            except Exception:  # a stream on another replica misses an event; its poll catches the end
                log.exception("publishing a run event failed")

    async def _receive(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            origin, run_id, event, data = json.loads(message["data"])
            if origin != self._origin:
                self._deliver(run_id, None if event is None else (event, data))

    def subscribe(self, run_id: str) -> asyncio.Queue[tuple[str, Any] | None]:
        queue: asyncio.Queue[tuple[str, Any] | None] = asyncio.Queue()
        self._subscribers.setdefault(run_id, []).append(queue)
        return queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue[tuple[str, Any] | None]) -> None:
        queues = self._subscribers.get(run_id, [])
        if queue in queues:
            queues.remove(queue)
        if not queues:
            self._subscribers.pop(run_id, None)

    def publish(self, run_id: str, event: str, data: Any) -> None:
        self._deliver(run_id, (event, data))
        if self._tasks:
            self._outbox.put_nowait(json.dumps([self._origin, run_id, event, data]))

    def end(self, run_id: str) -> None:
        """The run stopped (waiting for tool outputs, or finished): streams close."""
        self._deliver(run_id, None)
        if self._tasks:
            self._outbox.put_nowait(json.dumps([self._origin, run_id, None, None]))

    def _deliver(self, run_id: str, item: tuple[str, Any] | None) -> None:
        for queue in self._subscribers.get(run_id, []):
            queue.put_nowait(item)
