"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...protocol.chat import ChatCompletionRequest
from ..body import parse_body
from ..deps import CurrentKey
from ..sse import event_stream

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(request: Request, key: CurrentKey) -> Response:
    body = await parse_body(request, ChatCompletionRequest)
    service = request.app.state.chat
    plan = service.plan(body)
    if body.stream:
        chunks = service.stream(plan)
        return await event_stream(await anext(chunks), chunks)
    result = await service.create(plan)
    return Response(result.model_dump_json(), media_type="application/json")
