"""/v1/responses (reading, deleting, input items, token counts) and /v1/conversations, scoped by
the key's project. Creating a response is a model call: api/model_call.py serves it."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from ...errors import InvalidRequest, ModelNotFound
from ...protocol.common import Deleted
from ...protocol.responses import (
    ConversationCreate,
    ConversationItemsCreate,
    ConversationUpdate,
    InputTokensCount,
    ResponseCreate,
)
from ...services.responses.items import Item, normalise
from ...services.responses.service import ResponseService
from ..body import parse_body
from ..deps import CurrentKey
from ..pagination import cursor_page
from ..sse import event_stream

router = APIRouter()

Order = Literal["asc", "desc"]


def _service(request: Request) -> ResponseService:
    service = request.app.state.model_services["/v1/responses"].local
    assert isinstance(service, ResponseService)
    return service


def _items_page(items: list[Item], limit: int, after: str | None) -> dict[str, Any]:
    return cursor_page(items, lambda i: i["id"], after=after, limit=limit)


# ---------------------------------------------------------------- responses


@router.get("/v1/responses/{response_id}", response_model=None)
async def retrieve_response(
    response_id: str, request: Request, key: CurrentKey, stream: bool = False, starting_after: int | None = None
) -> dict[str, Any] | StreamingResponse:
    """The response; with `stream=true`, a background response's events (after `starting_after`)."""
    if not stream:
        return await _service(request).responses.get(key.project_id, response_id)
    events = _service(request).background.follow(key.project_id, response_id, starting_after)
    return event_stream(await anext(events), events)


@router.delete("/v1/responses/{response_id}")
async def delete_response(response_id: str, request: Request, key: CurrentKey) -> Deleted:
    await _service(request).responses.delete(key.project_id, response_id)
    return Deleted(id=response_id, object="response")


@router.post("/v1/responses/{response_id}/cancel")
async def cancel_response(response_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    return await _service(request).background.cancel(key.project_id, response_id)


@router.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    response_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    items = await _service(request).responses.inputs(key.project_id, response_id)
    return _items_page(items[::-1] if order == "desc" else items, limit, after)


@router.post("/v1/responses/input_tokens")
async def count_input_tokens(request: Request, key: CurrentKey) -> dict[str, Any]:
    body = await parse_body(request, InputTokensCount)
    if body.model is None:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    if not request.app.state.registry.allowed(body.model, key.models):
        raise ModelNotFound(body.model)  # as a model call answers for a model the key can't use
    given = body.model_dump(exclude_unset=True, by_alias=True)
    tokens = await _service(request).input_tokens(ResponseCreate.model_validate(given), key.project_id)
    return {"object": "response.input_tokens", "input_tokens": tokens}


# ---------------------------------------------------------------- conversations


@router.post("/v1/conversations")
async def create_conversation(request: Request, key: CurrentKey) -> dict[str, Any]:
    body = await parse_body(request, ConversationCreate)
    items = normalise(body.items, {}, "items")
    return await _service(request).conversations.create(key.project_id, body.metadata or {}, items)


@router.get("/v1/conversations/{conversation_id}")
async def retrieve_conversation(conversation_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    return await _service(request).conversations.get(key.project_id, conversation_id)


@router.post("/v1/conversations/{conversation_id}")
async def update_conversation(conversation_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    body = await parse_body(request, ConversationUpdate)
    return await _service(request).conversations.update(key.project_id, conversation_id, body.metadata)


@router.delete("/v1/conversations/{conversation_id}")
async def delete_conversation(conversation_id: str, request: Request, key: CurrentKey) -> Deleted:
    await _service(request).conversations.delete(key.project_id, conversation_id)
    return Deleted(id=conversation_id, object="conversation.deleted")


@router.post("/v1/conversations/{conversation_id}/items")
async def create_items(conversation_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    body = await parse_body(request, ConversationItemsCreate)
    conversations = _service(request).conversations
    known = {i["id"]: i for i in await conversations.items(key.project_id, conversation_id)}
    items = normalise(body.items, known, "items")
    await conversations.append(conversation_id, items)
    # A file_search_call this server did not make is left out (normalise), so `items` may be empty.
    first, last = (items[0]["id"], items[-1]["id"]) if items else (None, None)
    return {"object": "list", "data": items, "first_id": first, "last_id": last, "has_more": False}


@router.get("/v1/conversations/{conversation_id}/items")
async def list_items(
    conversation_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    items = await _service(request).conversations.items(key.project_id, conversation_id, order)
    return _items_page(items, limit, after)


@router.get("/v1/conversations/{conversation_id}/items/{item_id}")
async def retrieve_item(conversation_id: str, item_id: str, request: Request, key: CurrentKey) -> Item:
    return await _service(request).conversations.item(key.project_id, conversation_id, item_id)


@router.delete("/v1/conversations/{conversation_id}/items/{item_id}")
async def delete_item(conversation_id: str, item_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    conversations = _service(request).conversations
    await conversations.delete_item(key.project_id, conversation_id, item_id)
    return await conversations.get(key.project_id, conversation_id)
