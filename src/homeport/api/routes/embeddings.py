"""POST /v1/embeddings."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...protocol.embeddings import EmbeddingRequest
from ..body import parse_body
from ..deps import CurrentKey
from ..gate import respond

router = APIRouter()


@router.post("/v1/embeddings", response_model=None)
async def create_embedding(request: Request, key: CurrentKey) -> Response:
    body = await parse_body(request, EmbeddingRequest)
    return await respond(request, key, "embeddings", body)
