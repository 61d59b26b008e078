"""/v1/batches: create, retrieve, list, cancel — scoped by the key's project."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...protocol.batches import BatchCreate
from ...services.batches.service import BatchService
from ..body import parse_body
from ..deps import CurrentKey
from ..pagination import cursor_page

router = APIRouter()


def _service(request: Request) -> BatchService:
    return request.app.state.batches


@router.post("/v1/batches")
async def create_batch(request: Request, key: CurrentKey) -> dict[str, Any]:
    return await _service(request).create(key.project_id, key.id, await parse_body(request, BatchCreate))


@router.get("/v1/batches")
async def list_batches(request: Request, key: CurrentKey, after: str | None = None, limit: int = 20) -> dict[str, Any]:
    return cursor_page(await _service(request).find(key.project_id), lambda b: b["id"], after=after, limit=limit)


@router.get("/v1/batches/{batch_id}")
async def retrieve_batch(batch_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    return await _service(request).get(key.project_id, batch_id)


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, request: Request, key: CurrentKey) -> dict[str, Any]:
    return await _service(request).cancel(key.project_id, batch_id)
