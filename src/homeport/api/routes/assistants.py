"""Assistants v2: /v1/assistants, /v1/threads (+ messages, runs, run steps), scoped by project.

OpenAI retired this API in 2026; code written for it keeps running here. Streaming runs send
OpenAI's named server-sent events (`event: thread.run.created` … `event: done`).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ...errors import InvalidRequest
from ...protocol.assistants import (
    AssistantCreate,
    AssistantModify,
    MessageCreate,
    RunCreate,
    ThreadAndRunCreate,
    ThreadCreate,
    ThreadModify,
    ToolOutputsSubmit,
)
from ...protocol.common import Deleted, MetadataModify
from ...services.assistants.assistants import AssistantService
from ...services.assistants.objects import Document, Documents, Kind
from ...services.assistants.runs import RunService
from ...services.assistants.wire import public, public_step
from ..body import parse_body
from ..deps import CurrentKey
from ..pagination import cursor_page
from ..sse import named_event_stream

router = APIRouter()

Order = Literal["asc", "desc"]


def _assistants(request: Request) -> AssistantService:
    return request.app.state.assistants


def _runs(request: Request) -> RunService:
    return request.app.state.runs


def _docs(request: Request) -> Documents:
    return _assistants(request).docs


async def _deleted(request: Request, key: CurrentKey, kind: Kind, object_id: str, param: str, wire: str) -> Deleted:
    """Delete an object of this project (a thread takes its messages, runs and steps along)."""
    await _docs(request).get(kind, key.project_id, object_id, param)
    await _docs(request).delete(object_id)
    return Deleted(id=object_id, object=wire)


def _page(items: list[Document], limit: int, after: str | None, before: str | None) -> dict:
    return cursor_page(items, lambda x: x["id"], after=after, before=before, limit=limit)


# ---------------------------------------------------------------- assistants


@router.post("/v1/assistants")
async def create_assistant(request: Request, key: CurrentKey) -> Document:
    return await _assistants(request).create_assistant(key.project_id, await parse_body(request, AssistantCreate))


@router.get("/v1/assistants")
async def list_assistants(
    request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc", after: str | None = None,
    before: str | None = None,
) -> dict:  # fmt: skip
    return _page(await _docs(request).list_of("assistant", key.project_id, order=order), limit, after, before)


@router.get("/v1/assistants/{assistant_id}")
async def retrieve_assistant(assistant_id: str, request: Request, key: CurrentKey) -> Document:
    return await _docs(request).get("assistant", key.project_id, assistant_id, "assistant_id")


@router.post("/v1/assistants/{assistant_id}")
async def modify_assistant(assistant_id: str, request: Request, key: CurrentKey) -> Document:
    body = await parse_body(request, AssistantModify)
    return await _assistants(request).modify_assistant(key.project_id, assistant_id, body)


@router.delete("/v1/assistants/{assistant_id}")
async def delete_assistant(assistant_id: str, request: Request, key: CurrentKey) -> Deleted:
    return await _deleted(request, key, "assistant", assistant_id, "assistant_id", "assistant.deleted")


# ---------------------------------------------------------------- threads and messages


@router.post("/v1/threads")
async def create_thread(request: Request, key: CurrentKey) -> Document:
    return await _assistants(request).create_thread(key.project_id, await parse_body(request, ThreadCreate))


# Before /v1/threads/{thread_id}, which would otherwise take `runs` for a thread id.
@router.post("/v1/threads/runs", response_model=None)
async def create_thread_and_run(request: Request, key: CurrentKey) -> Document | StreamingResponse:
    body = await parse_body(request, ThreadAndRunCreate)
    new = body.thread or ThreadCreate()
    if body.tool_resources is not None:
        new = new.model_copy(update={"tool_resources": body.tool_resources})
    await _docs(request).get("assistant", key.project_id, body.assistant_id, "assistant_id")
    thread = await _assistants(request).create_thread(key.project_id, new)
    run = await _runs(request).create(key.project_id, thread, body, key.id)
    return await _start(request, key, run, body.stream)


@router.get("/v1/threads/{thread_id}")
async def retrieve_thread(thread_id: str, request: Request, key: CurrentKey) -> Document:
    return await _docs(request).get("thread", key.project_id, thread_id, "thread_id")


@router.post("/v1/threads/{thread_id}")
async def modify_thread(thread_id: str, request: Request, key: CurrentKey) -> Document:
    body = await parse_body(request, ThreadModify)
    return await _assistants(request).modify_thread(key.project_id, thread_id, body)


@router.delete("/v1/threads/{thread_id}")
async def delete_thread(thread_id: str, request: Request, key: CurrentKey) -> Deleted:
    return await _deleted(request, key, "thread", thread_id, "thread_id", "thread.deleted")


@router.post("/v1/threads/{thread_id}/messages")
async def create_message(thread_id: str, request: Request, key: CurrentKey) -> Document:
    body = await parse_body(request, MessageCreate)
    return await _assistants(request).create_message(key.project_id, thread_id, body)


@router.get("/v1/threads/{thread_id}/messages")
async def list_messages(
    thread_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None, before: str | None = None, run_id: str | None = None,
) -> dict:  # fmt: skip
    docs = _docs(request)
    await docs.get("thread", key.project_id, thread_id, "thread_id")
    items = await docs.list_of("message", key.project_id, thread_id=thread_id, run_id=run_id, order=order)
    return _page(items, limit, after, before)


async def _message(request: Request, key: CurrentKey, thread_id: str, message_id: str) -> Document:
    message = await _docs(request).get("message", key.project_id, message_id, "message_id")
    if message["thread_id"] != thread_id:
        raise InvalidRequest(f"No message {message_id} in thread {thread_id}.", param="message_id")
    return message


@router.get("/v1/threads/{thread_id}/messages/{message_id}")
async def retrieve_message(thread_id: str, message_id: str, request: Request, key: CurrentKey) -> Document:
    return await _message(request, key, thread_id, message_id)


@router.post("/v1/threads/{thread_id}/messages/{message_id}")
async def modify_message(thread_id: str, message_id: str, request: Request, key: CurrentKey) -> Document:
    body = await parse_body(request, MetadataModify)
    message = await _message(request, key, thread_id, message_id)
    message["metadata"] = body.metadata or {}
    await _docs(request).save(message)
    return message


@router.delete("/v1/threads/{thread_id}/messages/{message_id}")
async def delete_message(thread_id: str, message_id: str, request: Request, key: CurrentKey) -> Deleted:
    await _message(request, key, thread_id, message_id)
    return await _deleted(request, key, "message", message_id, "message_id", "thread.message.deleted")


# ---------------------------------------------------------------- runs


async def _start(request: Request, key: CurrentKey, run: Document, stream: bool | None) -> Any:
    runs = _runs(request)
    if not stream:
        await runs.enqueue(key.project_id, run["id"])
        return run
    first = [("thread.run.created", run), ("thread.run.queued", run)]
    return named_event_stream(runs.stream(key.project_id, run, first))


@router.post("/v1/threads/{thread_id}/runs", response_model=None)
async def create_run(thread_id: str, request: Request, key: CurrentKey) -> Document | StreamingResponse:
    body = await parse_body(request, RunCreate)
    thread = await _docs(request).get("thread", key.project_id, thread_id, "thread_id")
    run = await _runs(request).create(key.project_id, thread, body, key.id)
    return await _start(request, key, run, body.stream)


@router.get("/v1/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None, before: str | None = None,
) -> dict:  # fmt: skip
    docs = _docs(request)
    await docs.get("thread", key.project_id, thread_id, "thread_id")
    items = await docs.list_of("run", key.project_id, thread_id=thread_id, order=order)
    return _page([public(r) for r in items], limit, after, before)


async def _run(request: Request, key: CurrentKey, thread_id: str, run_id: str) -> Document:
    run = await _docs(request).get("run", key.project_id, run_id, "run_id")
    if run["thread_id"] != thread_id:
        raise InvalidRequest(f"No run {run_id} in thread {thread_id}.", param="run_id")
    return public(run)


@router.get("/v1/threads/{thread_id}/runs/{run_id}")
async def retrieve_run(thread_id: str, run_id: str, request: Request, key: CurrentKey) -> Document:
    return await _run(request, key, thread_id, run_id)


@router.post("/v1/threads/{thread_id}/runs/{run_id}")
async def modify_run(thread_id: str, run_id: str, request: Request, key: CurrentKey) -> Document:
    body = await parse_body(request, MetadataModify)
    return await _runs(request).modify(key.project_id, thread_id, run_id, body.metadata)


@router.post("/v1/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(thread_id: str, run_id: str, request: Request, key: CurrentKey) -> Document:
    return await _runs(request).cancel(key.project_id, thread_id, run_id)


@router.post("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", response_model=None)
async def submit_tool_outputs(
    thread_id: str, run_id: str, request: Request, key: CurrentKey
) -> Document | StreamingResponse:
    body = await parse_body(request, ToolOutputsSubmit)
    run = await _runs(request).submit_tool_outputs(key.project_id, thread_id, run_id, body.tool_outputs)
    if not body.stream:
        await _runs(request).enqueue(key.project_id, run_id)
        return run
    return named_event_stream(_runs(request).stream(key.project_id, run, [("thread.run.queued", run)]))


@router.get("/v1/threads/{thread_id}/runs/{run_id}/steps")
async def list_steps(
    thread_id: str, run_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None, before: str | None = None,
) -> dict:  # fmt: skip
    await _run(request, key, thread_id, run_id)
    items = await _docs(request).list_of("step", key.project_id, thread_id=thread_id, run_id=run_id, order=order)
    return _page([public_step(s) for s in items], limit, after, before)


@router.get("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def retrieve_step(thread_id: str, run_id: str, step_id: str, request: Request, key: CurrentKey) -> Document:
    await _run(request, key, thread_id, run_id)
    step = await _docs(request).get("step", key.project_id, step_id, "step_id")
    if step["run_id"] != run_id:
        raise InvalidRequest(f"No step {step_id} in run {run_id}.", param="step_id")
    return public_step(step)
