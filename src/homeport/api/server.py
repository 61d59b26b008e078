"""The HTTP server: uvicorn, with a bounded graceful shutdown and a deadline on request heads.

- SIGTERM: uvicorn stops accepting and waits for in-flight requests; the app's Drain stops what
  still generates after `shutdown_grace_s`; uvicorn's own graceful timeout, a few seconds later,
  cancels whatever is left, and the app shuts down (usage flushed, jobs released).
- Slow clients: a connection must deliver each request's line and headers within
  `request_head_timeout_s` of opening or of starting the request, or it is answered 408 and closed.
  uvicorn has no such deadline, so a client sending a byte a second (slowloris), or nothing at
  all, would otherwise hold its connection forever. Idle keep-alive connections are closed by
  uvicorn after `timeout_keep_alive` (5 s).
- The heap: once the models are loaded, what start-up built is frozen out of Python's cyclic
  garbage collector (`_freeze_heap`).
"""

from __future__ import annotations

import asyncio
import gc

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..settings import Settings
from .drain import Drain

__all__ = ["serve"]

_TOO_SLOW = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def serve(app: FastAPI, settings: Settings) -> None:
    protocol = type("HeadDeadlineProtocol", (_HeadDeadline,), {"head_timeout_s": settings.request_head_timeout_s})
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning", http=protocol,
                            timeout_graceful_shutdown=int(settings.shutdown_grace_s) + 5)  # fmt: skip
    _GracefulServer(config, app).run()


class _GracefulServer(uvicorn.Server):
    """uvicorn, telling the app's Drain when shutdown begins."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._drain: Drain = app.state.drain
        self._loaded: asyncio.Event = app.state.registry.ready
        self._freezing: asyncio.Task[None] | None = None

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        await super().startup(sockets)
        self._freezing = asyncio.create_task(self._freeze_when_loaded())

    async def _freeze_when_loaded(self) -> None:
        await self._loaded.wait()
        _freeze_heap()

    async def shutdown(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        self._drain.begin()
        await super().shutdown(sockets)


def _freeze_heap() -> None:
    """Leave what start-up built out of Python's cyclic garbage collector from now on.

    A full collection walks every object the collector tracks while holding the GIL, so the event
    loop and the engines' driver thread wait for it. A started server tracks about 214,000 objects
    (modules, schemas, the models' Python side): one full collection took 76–108 ms, a pause in
    every stream. Frozen, later full collections walk only what was made since: about 7,000
    objects, 1.1–1.5 ms (bench/gc_pauses.py). Frozen objects are still freed when nothing refers
    to them; the engines hold no reference cycles, so an unloaded model is freed at once
    (tests/unit/test_registry.py). A process-wide choice, so the server makes it, not the app:
    tests run many apps in one process."""
    gc.collect()
    gc.freeze()


class _HeadDeadline(HttpToolsProtocol):
    head_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.write(_TOO_SLOW)
            self.transport.close()
