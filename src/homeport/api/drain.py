"""Bounded graceful shutdown, and the watch every generation runs under.

On SIGTERM the server stops accepting connections and gives in-flight requests `grace_s` to
finish. Then `Drain` stops what is still generating: a non-streamed request answers 503
`server_shutting_down`, a stream ends with that error event. Either way the engine slot is freed
and the usage record written (flushed when the app shuts down). The same watch cancels a
non-streamed request whose client disconnected, so nobody's slot generates for no reader.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import aclosing
from typing import TypeVar

from starlette.requests import Request

from ..errors import HomeportError

__all__ = ["ClientLeft", "Drain", "ShuttingDown"]

T = TypeVar("T")


class ShuttingDown(HomeportError):
    status = 503
    code = "server_shutting_down"

    def __init__(self) -> None:
        super().__init__("The server is shutting down; retry the request.", retry_after=1)


class ClientLeft(Exception):
    """The client disconnected before the answer was ready."""


class Drain:
    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._stop = asyncio.Event()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def begin(self) -> None:
        """The server is shutting down: whatever still generates after the grace period is stopped."""
        asyncio.get_running_loop().call_later(self.grace_s, self._stop.set)

    async def watch(self, request: Request, work: Awaitable[T]) -> T:
        """Await `work`; cancel it if the client disconnects (ClientLeft) or the grace period ends
        (ShuttingDown). The body was read already, so the next ASGI message can only be the disconnect."""

        async def left() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        task = asyncio.ensure_future(work)
        watchers = (asyncio.ensure_future(left()), asyncio.ensure_future(self._stop.wait()))
        try:
            await asyncio.wait((task, *watchers), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, *watchers):
                pending.cancel()  # all of them, if this request is itself cancelled
        if task.done() and not task.cancelled():
            return task.result()
        await asyncio.gather(task, return_exceptions=True)  # let it release its engine slot
        raise ShuttingDown() if self.stopped else ClientLeft()

    async def stream(self, events: AsyncGenerator[T, None]) -> AsyncIterator[T]:
        """Pass a stream through until the grace period ends, then raise ShuttingDown (sent as an
        error event; the stream's close frees its slot). A generating stream yields every engine
        step, so a flag checked per event stops it within a step at no cost per token; a client
        leaving a stream is seen by the server already."""
        async with aclosing(events):  # closed at once when the client leaves, not when collected
            async for event in events:
                if self.stopped:
                    raise ShuttingDown()
                yield event
