"""Assistants v2: /v1/assistants, /v1/threads (+ messages, runs, run steps), scoped by project.

OpenAI retired this API in 2026; code written for it keeps running here. Streaming runs send
OpenAI's named server-sent events (`event: thread.run.created` … `event: done`).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request

from ...errors import InvalidRequest
from ...protocol.common import Request as Body
from ...services.assistants.objects import AssistantService
from ...services.assistants.runs import RunService, _public, _public_step
from ...services.retrieval.stores import check_metadata
from ..body import parse_body
from ..deps import CurrentKey
from ..pagination import cursor_page
from ..sse import named_event_stream

router = APIRouter()

Order = Literal["asc", "desc"]


class _Assistant(Body):
    model: Any = None
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    reasoning_effort: str | None = None
    tools: Any = None
    tool_resources: Any = None
    metadata: Any = None
    temperature: Any = None
    top_p: Any = None
    response_format: Any = None


class _Thread(Body):
    messages: Any = None
    tool_resources: Any = None
    metadata: Any = None


class _Message(Body):
    role: Any = None
    content: Any = None
    attachments: Any = None
    metadata: Any = None


class _ModifyMessage(Body):
    metadata: Any = None


class _RunOptions(Body):
    """What a run request and a create-thread-and-run request share."""

    assistant_id: str
    model: str | None = None
    instructions: str | None = None
    tools: Any = None
    metadata: Any = None
    temperature: Any = None
    top_p: Any = None
    stream: bool | None = None
    max_prompt_tokens: Any = None
    max_completion_tokens: Any = None
    truncation_strategy: Any = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    response_format: Any = None


class _Run(_RunOptions):
    reasoning_effort: str | None = None
    additional_instructions: str | None = None
    additional_messages: list[Any] | None = None


class _ThreadAndRun(_RunOptions):
    thread: Any = None
    tool_resources: Any = None


class _ToolOutputs(Body):
    tool_outputs: Any
    stream: bool | None = None


class _ModifyRun(Body):
    metadata: Any = None


def _assistants(request: Request) -> AssistantService:
    return request.app.state.assistants


def _runs(request: Request) -> RunService:
    return request.app.state.runs


def _given(model: Body) -> dict[str, Any]:
    return model.model_dump(exclude_unset=True)


# ---------------------------------------------------------------- assistants


@router.post("/v1/assistants")
async def create_assistant(request: Request, key: CurrentKey) -> dict:
    body = _given(await parse_body(request, _Assistant))
    if "model" not in body:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    return await _assistants(request).create_assistant(key.project_id, body)


@router.get("/v1/assistants")
async def list_assistants(
    request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc", after: str | None = None,
    before: str | None = None,
) -> dict:  # fmt: skip
    items = await _assistants(request).docs.list_of("assistant", key.project_id, order=order)
    return cursor_page(items, lambda x: x["id"], after=after, before=before, limit=limit)


@router.get("/v1/assistants/{assistant_id}")
async def retrieve_assistant(assistant_id: str, request: Request, key: CurrentKey) -> dict:
    return await _assistants(request).docs.get("assistant", key.project_id, assistant_id, "assistant_id")


@router.post("/v1/assistants/{assistant_id}")
async def modify_assistant(assistant_id: str, request: Request, key: CurrentKey) -> dict:
    body = _given(await parse_body(request, _Assistant))
    return await _assistants(request).modify_assistant(key.project_id, assistant_id, body)


@router.delete("/v1/assistants/{assistant_id}")
async def delete_assistant(assistant_id: str, request: Request, key: CurrentKey) -> dict:
    docs = _assistants(request).docs
    await docs.get("assistant", key.project_id, assistant_id, "assistant_id")
    await docs.delete(assistant_id)
    return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}


# ---------------------------------------------------------------- threads and messages


@router.post("/v1/threads")
async def create_thread(request: Request, key: CurrentKey) -> dict:
    return await _assistants(request).create_thread(key.project_id, _given(await parse_body(request, _Thread)))


async def _thread(request: Request, key: CurrentKey, thread_id: str) -> dict[str, Any]:
    return await _assistants(request).docs.get("thread", key.project_id, thread_id, "thread_id")


@router.get("/v1/threads/{thread_id}")
async def retrieve_thread(thread_id: str, request: Request, key: CurrentKey) -> dict:
    return await _thread(request, key, thread_id)


@router.post("/v1/threads/{thread_id}")
async def modify_thread(thread_id: str, request: Request, key: CurrentKey) -> dict:
    body = _given(await parse_body(request, _Thread))
    if "messages" in body:
        raise InvalidRequest("Unrecognized request argument supplied: messages", param="messages")
    thread = await _thread(request, key, thread_id)
    service = _assistants(request)
    if "metadata" in body:
        thread["metadata"] = check_metadata(body["metadata"])
    if "tool_resources" in body:
        thread["tool_resources"] = await service._tool_resources(key.project_id, body["tool_resources"])
    await service.docs.save(thread)
    return thread


@router.delete("/v1/threads/{thread_id}")
async def delete_thread(thread_id: str, request: Request, key: CurrentKey) -> dict:
    await _thread(request, key, thread_id)
    await _assistants(request).docs.delete(thread_id)  # its messages, runs and steps too
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}


@router.post("/v1/threads/{thread_id}/messages")
async def create_message(thread_id: str, request: Request, key: CurrentKey) -> dict:
    body = _given(await parse_body(request, _Message))
    thread = await _thread(request, key, thread_id)
    runs = await _assistants(request).docs.list_of("run", key.project_id, thread_id=thread_id,
                                                   status=["queued", "in_progress", "cancelling"])  # fmt: skip
    if runs:
        raise InvalidRequest(f"Can't add messages to {thread_id} while a run {runs[0]['id']} is active.",
                             param="thread_id")  # fmt: skip
    return await _assistants(request).add_message(key.project_id, thread, body)


@router.get("/v1/threads/{thread_id}/messages")
async def list_messages(
    thread_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None, before: str | None = None, run_id: str | None = None,
) -> dict:  # fmt: skip
    await _thread(request, key, thread_id)
    items = await _assistants(request).docs.list_of("message", key.project_id, thread_id=thread_id, run_id=run_id,
                                                    order=order)  # fmt: skip
    return cursor_page(items, lambda x: x["id"], after=after, before=before, limit=limit)


async def _message(request: Request, key: CurrentKey, thread_id: str, message_id: str) -> dict[str, Any]:
    message = await _assistants(request).docs.get("message", key.project_id, message_id, "message_id")
    if message["thread_id"] != thread_id:
        raise InvalidRequest(f"No message {message_id} in thread {thread_id}.", param="message_id")
    return message


@router.get("/v1/threads/{thread_id}/messages/{message_id}")
async def retrieve_message(thread_id: str, message_id: str, request: Request, key: CurrentKey) -> dict:
    return await _message(request, key, thread_id, message_id)


@router.post("/v1/threads/{thread_id}/messages/{message_id}")
async def modify_message(thread_id: str, message_id: str, request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, _ModifyMessage)
    message = await _message(request, key, thread_id, message_id)
    message["metadata"] = check_metadata(body.metadata)
    await _assistants(request).docs.save(message)
    return message


@router.delete("/v1/threads/{thread_id}/messages/{message_id}")
async def delete_message(thread_id: str, message_id: str, request: Request, key: CurrentKey) -> dict:
    await _message(request, key, thread_id, message_id)
    await _assistants(request).docs.delete(message_id)
    return {"id": message_id, "object": "thread.message.deleted", "deleted": True}


# ---------------------------------------------------------------- runs


async def _start(request: Request, key: CurrentKey, run: dict[str, Any], stream: bool | None) -> Any:
    runs = _runs(request)
    if not stream:
        await runs.enqueue(key.project_id, run["id"])
        return run
    first = [("thread.run.created", run), ("thread.run.queued", run)]
    return named_event_stream(runs.stream(key.project_id, run, first))


@router.post("/v1/threads/{thread_id}/runs")
async def create_run(thread_id: str, request: Request, key: CurrentKey) -> Any:
    body = await parse_body(request, _Run)
    thread = await _thread(request, key, thread_id)
    run = await _runs(request).create(key.project_id, thread, _given(body), key.id)
    return await _start(request, key, run, body.stream)


@router.post("/v1/threads/runs")
async def create_thread_and_run(request: Request, key: CurrentKey) -> Any:
    body = await parse_body(request, _ThreadAndRun)
    given = _given(body)
    thread_body = given.pop("thread", None) or {}
    if not isinstance(thread_body, dict):
        raise InvalidRequest("thread is an object.", param="thread")
    if "tool_resources" in given:
        thread_body["tool_resources"] = given.pop("tool_resources")
    await _assistants(request).docs.get("assistant", key.project_id, body.assistant_id, "assistant_id")
    thread = await _assistants(request).create_thread(key.project_id, thread_body)
    run = await _runs(request).create(key.project_id, thread, given, key.id)
    return await _start(request, key, run, body.stream)


@router.get("/v1/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None, before: str | None = None,
) -> dict:  # fmt: skip
    await _thread(request, key, thread_id)
    items = await _runs(request).docs.list_of("run", key.project_id, thread_id=thread_id, order=order)
    items = [_public(r) for r in items]
    return cursor_page(items, lambda x: x["id"], after=after, before=before, limit=limit)


async def _run(request: Request, key: CurrentKey, thread_id: str, run_id: str) -> dict[str, Any]:
    run = await _runs(request).docs.get("run", key.project_id, run_id, "run_id")
    if run["thread_id"] != thread_id:
        raise InvalidRequest(f"No run {run_id} in thread {thread_id}.", param="run_id")
    return _public(run)


@router.get("/v1/threads/{thread_id}/runs/{run_id}")
async def retrieve_run(thread_id: str, run_id: str, request: Request, key: CurrentKey) -> dict:
    return await _run(request, key, thread_id, run_id)


@router.post("/v1/threads/{thread_id}/runs/{run_id}")
async def modify_run(thread_id: str, run_id: str, request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, _ModifyRun)
    run = await _runs(request).docs.get("run", key.project_id, run_id, "run_id")
    await _run(request, key, thread_id, run_id)
    run["metadata"] = check_metadata(body.metadata)
    await _runs(request).docs.save(run)
    return _public(run)


@router.post("/v1/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(thread_id: str, run_id: str, request: Request, key: CurrentKey) -> dict:
    return await _runs(request).cancel(key.project_id, thread_id, run_id)


@router.post("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(thread_id: str, run_id: str, request: Request, key: CurrentKey) -> Any:
    body = await parse_body(request, _ToolOutputs)
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
    items = await _runs(request).docs.list_of("step", key.project_id, thread_id=thread_id, run_id=run_id,
                                              order=order)  # fmt: skip
    return cursor_page([_public_step(s) for s in items], lambda x: x["id"], after=after, before=before, limit=limit)


@router.get("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def retrieve_step(thread_id: str, run_id: str, step_id: str, request: Request, key: CurrentKey) -> dict:
    await _run(request, key, thread_id, run_id)
    step = await _runs(request).docs.get("step", key.project_id, step_id, "step_id")
    if step["run_id"] != run_id:
        raise InvalidRequest(f"No step {step_id} in run {run_id}.", param="step_id")
    return _public_step(step)
