"""POST /v1/completions (legacy)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...protocol.completions import CompletionRequest
from ..body import parse_body
from ..deps import CurrentKey
from ..sse import event_stream

router = APIRouter()


@router.post("/v1/completions", response_model=None)
async def create_completion(request: Request, key: CurrentKey) -> Response:
    body = await parse_body(request, CompletionRequest)
    service = request.app.state.completions
    plan = service.plan(body)
    if body.stream:
        chunks = service.stream(plan)
        return await event_stream(await anext(chunks), chunks)
    result = await service.create(plan)
    return Response(result.model_dump_json(), media_type="application/json")
