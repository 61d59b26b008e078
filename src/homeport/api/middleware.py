"""ASGI middleware, outermost first: request id, arrivals, metrics, then the request-size limit."""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..backends.base import arrivals
from ..errors import RequestTooLarge
from ..ids import new_id
from ..logs import ACCESS
from ..metrics import Metrics
from ..protocol.audio import MAX_AUDIO_BYTES
from .errors import error_body

__all__ = ["RequestIdMiddleware", "ArrivalMiddleware", "BodyLimitMiddleware", "MetricsMiddleware"]


class RequestIdMiddleware:
    """Every response carries `x-request-id` (the client's, if it sent one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = dict(scope["headers"]).get(b"x-request-id")
        request_id = incoming.decode("latin-1")[:200] if incoming else new_id("req_", 24)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)


class ArrivalMiddleware:
    """Counts a model call from its arrival until it reaches its engine (`backends.base.Arrivals`;
    api/model_call.py marks the hand-over), so a scheduler starting from idle can wait for the
    requests that arrived with the first."""

    def __init__(self, app: ASGIApp, paths: set[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        with arrivals.arriving() as reading:

            async def receive_and_watch() -> Message:
                message = await receive()
                if message["type"] == "http.request":
                    reading(message.get("more_body", False))
                return message

            await self.app(scope, receive_and_watch, send)


class BodyLimitMiddleware:
    """413 for bodies over the limit, by Content-Length or by counting a chunked body."""

    _UPLOADS = ("/v1/files", "/v1/uploads", "/dashboard/data/files")
    _AUDIO = ("/v1/audio/transcriptions", "/v1/audio/translations")
    _AUDIO_MAX = MAX_AUDIO_BYTES + (1 << 20)  # OpenAI's 25 MB per file, + room for the form's framing

    def __init__(self, app: ASGIApp, max_bytes: int, uploads_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads_max_bytes = uploads_max_bytes or max_bytes  # file uploads may be larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        limit = (self.uploads_max_bytes if path.startswith(self._UPLOADS) else
                 max(self._AUDIO_MAX, self.max_bytes) if path.startswith(self._AUDIO) else self.max_bytes)  # fmt: skip
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await self._reject(send, limit)
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        err = RequestTooLarge(f"Request body too large; the limit is {limit} bytes.")
        body = json.dumps(error_body(err)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class MetricsMiddleware:
    """Counts every answer by route template, status and model, and times it to the last byte."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            elapsed = time.perf_counter() - start
            state = scope.get("state", {})
            route = getattr(scope.get("route"), "path", "unmatched")
            model = state.get("model", "")
            self.metrics.requests.labels(route, scope["method"], str(status), model).inc()
            self.metrics.latency.labels(route, model).observe(elapsed)
            if self.access_log:
                key = state.get("key")
                ACCESS.info(
                    "%s %s %s %.1fms", scope["method"], scope["path"], status, 1000 * elapsed,
                    extra={"request_id": state.get("request_id"), "method": scope["method"], "path": scope["path"],
                           "status": status, "latency_ms": round(1000 * elapsed, 2), "model": model or None,
                           "key_id": key.id if key else None, "project_id": key.project_id if key else None},
                )  # fmt: skip
