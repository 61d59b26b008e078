"""POST /v1/completions (legacy)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...protocol.completions import CompletionRequest
from ..body import parse_body
from ..deps import CurrentKey
from ..gate import respond

router = APIRouter()


@router.post("/v1/completions", response_model=None)
async def create_completion(request: Request, key: CurrentKey) -> Response:
    body = await parse_body(request, CompletionRequest)
    return await respond(request, key, "completions", body)
