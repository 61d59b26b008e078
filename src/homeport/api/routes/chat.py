"""Stored chat completions (created with `store: true`): list, retrieve, update metadata, delete,
and their messages. Creating one is a model call: api/model_call.py serves it."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request

from ...protocol.common import MetadataModify
from ...services.inference.chat import ChatService
from ...services.inference.stored import StoredCompletions
from ..body import parse_body
from ..deps import CurrentKey
from ..pagination import cursor_page

router = APIRouter()

Order = Literal["asc", "desc"]


def _stored(request: Request) -> StoredCompletions:
    service = request.app.state.model_services["/v1/chat/completions"].local
    assert isinstance(service, ChatService) and service.stored is not None
    return service.stored


@router.get("/v1/chat/completions")
async def list_completions(
    request: Request, key: CurrentKey, model: str | None = None, after: str | None = None, limit: int = 20,
    order: Order = "asc",
) -> dict[str, Any]:  # fmt: skip
    metadata = {k[len("metadata[") : -1]: v for k, v in request.query_params.items() if k.startswith("metadata[")}
    found = await _stored(request).find(key.project_id, model, metadata, order)
    return cursor_page(found, lambda c: c["id"], after=after, limit=limit)


@router.get("/v1/chat/completions/{completion_id}")
async def retrieve_completion(completion_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    return await _stored(request).get(key.project_id, completion_id)


@router.post("/v1/chat/completions/{completion_id}")
async def update_completion(completion_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    body = await parse_body(request, MetadataModify)
    return await _stored(request).update(key.project_id, completion_id, body.metadata or {})


@router.delete("/v1/chat/completions/{completion_id}")
async def delete_completion(completion_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    await _stored(request).delete(key.project_id, completion_id)
    return {"object": "chat.completion.deleted", "id": completion_id, "deleted": True}


@router.get("/v1/chat/completions/{completion_id}/messages")
async def list_messages(
    completion_id: str, request: Request, key: CurrentKey, after: str | None = None, limit: int = 20,
    order: Order = "asc",
) -> dict[str, Any]:  # fmt: skip
    messages = await _stored(request).messages(key.project_id, completion_id)
    return cursor_page(messages if order == "asc" else messages[::-1], lambda m: m["id"], after=after, limit=limit)
