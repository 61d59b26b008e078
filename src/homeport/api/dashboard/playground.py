"""The playground: a chat with the served models from the browser.

Its requests go through the real `/v1/chat/completions` route, in process: an ASGI call into the
whole app (middleware, admission, limits, budgets, guardrails, usage, logs) as the signed-in key,
which the session names instead of a bearer secret (the browser never holds one). An admin key
does not call models; an admin's playground runs in a project chosen on the page, as a key of
that project would, and its usage is recorded under the admin key's id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message

from ...errors import InvalidRequest, NotFound
from ...services.platform.keys import ApiKey
from .render import page
from .routing import DashboardRoute
from .session import SignedIn, Viewer

router = APIRouter(route_class=DashboardRoute)

INJECTED_KEY = "dashboard_key"
"""The ASGI scope state entry `authenticate` takes the caller's key from (set only here)."""


@router.get("/dashboard/playground")
async def playground_page(request: Request, viewer: SignedIn) -> Response:
    registry = request.app.state.registry
    chat_models = [m for m in registry.ids() if registry.config(m).kind == "chat"
                   and registry.allowed(m, None if viewer.admin else viewer.key.models)]  # fmt: skip
    projects = await request.app.state.projects.list(include_archived=False) if viewer.admin else []
    return page(request, viewer, "playground.html", models=chat_models, projects=projects)


async def _caller(request: Request, viewer: Viewer) -> ApiKey:
    """Who the call runs as: the signed-in key, or for an admin a key-like identity in the chosen project."""
    if not viewer.admin:
        return viewer.key
    project_id = request.query_params.get("project", "")
    project = await request.app.state.projects.get(project_id) if project_id else None
    if project is None or project.archived_at is not None:
        raise NotFound("Choose a live project for the playground to run in.", param="project")
    limits = tuple(await request.app.state.limit_rows.of("project", project.id))
    return dataclasses.replace(viewer.key, admin=False, project_id=project.id, project=project, limits=limits,
                               budget_tokens=None, budget_micro_usd=None)  # fmt: skip


@router.post("/dashboard/playground/chat")
async def playground_chat(request: Request, viewer: SignedIn) -> Response:
    """Forwards the JSON body to /v1/chat/completions; the answer (JSON or an SSE stream) comes back as is."""
    body = await request.body()
    if not body:
        raise InvalidRequest("The playground sends a chat completion request as JSON.")
    caller = await _caller(request, viewer)
    status, headers, chunks = await call(request.app, "/v1/chat/completions", body, caller,
                                         request.headers.get("x-request-id"))  # fmt: skip
    kept = {k: v for k, v in headers.items() if k in ("content-type", "x-request-id", "retry-after", "x-cache")}
    return StreamingResponse(chunks, status_code=status, headers=kept)


async def call(app: ASGIApp, path: str, body: bytes, key: ApiKey,
               request_id: str | None = None) -> tuple[int, dict[str, str], AsyncIterator[bytes]]:  # fmt: skip
    """POST `body` to `path` inside this process as `key`: (status, headers, body chunks as they come).
    When the consumer stops reading (the browser left), the call sees a disconnect, as over HTTP."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if request_id:
        headers.append((b"x-request-id", request_id.encode("latin-1")))
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 0), "server": ("dashboard", 0), "state": {INJECTED_KEY: key},
    }  # fmt: skip
    messages: asyncio.Queue[Message | None] = asyncio.Queue()
    left = asyncio.Event()
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        await messages.put(message)

    async def run() -> None:
        try:
            await app(scope, receive, send)
        finally:
            await messages.put(None)

    task = asyncio.create_task(run())
    start = await messages.get()
    if start is None or start["type"] != "http.response.start":
        await task  # raises what the app raised
        raise RuntimeError("the app answered nothing")
    answer_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while (message := await messages.get()) is not None:
                if message["type"] == "http.response.body":
                    if message.get("body"):
                        yield message["body"]
                    if not message.get("more_body"):
                        break
        finally:
            left.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)

    return int(start["status"]), answer_headers, chunks()
