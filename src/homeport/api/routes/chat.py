"""POST /v1/chat/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...protocol.chat import ChatCompletionRequest
from ..body import parse_body
from ..deps import CurrentKey
from ..gate import respond

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def create_chat_completion(request: Request, key: CurrentKey) -> Response:
    body = await parse_body(request, ChatCompletionRequest)
    return await respond(request, key, "chat", body)
