"""POST /v1/messages/count_tokens (Anthropic's); POST /v1/messages is served by api/model_call.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...protocol.messages import CountTokensRequest
from ..body import parse_body
from ..deps import CurrentKey
from ..model_call import answering, may_call

router = APIRouter()


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request, key: CurrentKey) -> dict[str, Any]:
    body = await parse_body(request, CountTokensRequest)
    may_call(request, key, body.model)
    body = body.model_copy(update={"model": answering(request, key, body.model)})
    service = request.app.state.model_services["/v1/messages"].local
    return {"input_tokens": await service.count_tokens(body)}
