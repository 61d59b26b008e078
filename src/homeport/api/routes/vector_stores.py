"""/v1/vector_stores: stores, their files and file batches, and search — scoped by the key's project."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from ...errors import InvalidRequest
from ...ids import sortable_id
from ...protocol.common import Request as Body
from ...services.retrieval.stores import VectorStoreService
from ..body import parse_body
from ..deps import CurrentKey
from ..pagination import cursor_page

router = APIRouter()

Order = Literal["asc", "desc"]


class _CreateStore(Body):
    file_ids: list[str] | None = Field(default=None, max_length=500)
    name: str | None = None
    description: str | None = None
    expires_after: Any = None
    chunking_strategy: Any = None
    metadata: Any = None


class _UpdateStore(Body):
    name: str | None = None
    expires_after: Any = None
    metadata: Any = None


class _AttachFile(Body):
    file_id: str
    chunking_strategy: Any = None
    attributes: Any = None


class _BatchFile(Body):
    file_id: str
    chunking_strategy: Any = None
    attributes: Any = None


class _CreateBatch(Body):
    file_ids: list[str] | None = Field(default=None, max_length=2000)
    files: list[_BatchFile] | None = Field(default=None, max_length=2000)
    chunking_strategy: Any = None
    attributes: Any = None


class _Search(Body):
    query: Any
    rewrite_query: bool | None = None
    max_num_results: int | None = None
    filters: Any = None
    ranking_options: Any = None


class _UpdateAttributes(Body):
    attributes: Any


def _service(request: Request) -> VectorStoreService:
    return request.app.state.vector_stores


@router.post("/v1/vector_stores")
async def create_store(request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, _CreateStore)
    return await _service(request).create(key.project_id, body.model_dump(exclude_unset=True))


@router.get("/v1/vector_stores")
async def list_stores(
    request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc", after: str | None = None,
    before: str | None = None,
) -> dict:  # fmt: skip
    stores = await _service(request).list_stores(key.project_id, order)
    return cursor_page(stores, lambda s: s["id"], after=after, before=before, limit=limit)


@router.get("/v1/vector_stores/{store_id}")
async def retrieve_store(store_id: str, request: Request, key: CurrentKey) -> dict:
    return await _service(request).retrieve(key.project_id, store_id)


@router.post("/v1/vector_stores/{store_id}")
async def update_store(store_id: str, request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, _UpdateStore)
    return await _service(request).update(key.project_id, store_id, body.model_dump(exclude_unset=True))


@router.delete("/v1/vector_stores/{store_id}")
async def delete_store(store_id: str, request: Request, key: CurrentKey) -> dict:
    await _service(request).delete(key.project_id, store_id)
    return {"id": store_id, "object": "vector_store.deleted", "deleted": True}


@router.post("/v1/vector_stores/{store_id}/search")
async def search_store(store_id: str, request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, _Search)
    return await _service(request).search(key.project_id, store_id, body.model_dump(exclude_unset=True))


@router.post("/v1/vector_stores/{store_id}/files")
async def attach_file(store_id: str, request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, _AttachFile)
    service = _service(request)
    await service.attach(key.project_id, store_id, [body.file_id], body.chunking_strategy, body.attributes)
    return await service.file(key.project_id, store_id, body.file_id)


@router.get("/v1/vector_stores/{store_id}/files")
async def list_files(
    store_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None, before: str | None = None, filter: str | None = None,
) -> dict:  # fmt: skip
    files = await _service(request).files(key.project_id, store_id, order, _status(filter))
    return cursor_page(files, lambda f: f["id"], after=after, before=before, limit=limit)


def _status(value: str | None) -> str | None:
    if value is not None and value not in ("in_progress", "completed", "failed", "cancelled"):
        raise InvalidRequest("filter is one of in_progress, completed, failed, cancelled.", param="filter")
    return value


@router.get("/v1/vector_stores/{store_id}/files/{file_id}")
async def retrieve_file(store_id: str, file_id: str, request: Request, key: CurrentKey) -> dict:
    return await _service(request).file(key.project_id, store_id, file_id)


@router.post("/v1/vector_stores/{store_id}/files/{file_id}")
async def update_file(store_id: str, file_id: str, request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, _UpdateAttributes)
    return await _service(request).update_file(key.project_id, store_id, file_id, body.attributes)


@router.delete("/v1/vector_stores/{store_id}/files/{file_id}")
async def remove_file(store_id: str, file_id: str, request: Request, key: CurrentKey) -> dict:
    await _service(request).remove_file(key.project_id, store_id, file_id)
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


@router.get("/v1/vector_stores/{store_id}/files/{file_id}/content")
async def file_content(store_id: str, file_id: str, request: Request, key: CurrentKey) -> dict:
    data = await _service(request).file_content(key.project_id, store_id, file_id)
    return {"object": "vector_store.file_content.page", "data": data, "has_more": False, "next_page": None}


@router.post("/v1/vector_stores/{store_id}/file_batches")
async def create_batch(store_id: str, request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, _CreateBatch)
    if (body.file_ids is None) == (body.files is None):
        raise InvalidRequest("Give exactly one of 'file_ids' or 'files'.", param="file_ids")
    per_file = {f.file_id: (f.chunking_strategy, f.attributes) for f in body.files or []}
    file_ids = body.file_ids if body.file_ids is not None else list(per_file)
    if not file_ids:
        raise InvalidRequest("A batch needs at least one file.", param="file_ids")
    batch_id = sortable_id("vsfb_")
    service = _service(request)
    await service.attach(key.project_id, store_id, file_ids, body.chunking_strategy, body.attributes, batch_id,
                         per_file or None)  # fmt: skip
    return await service.batch(key.project_id, store_id, batch_id)


@router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}")
async def retrieve_batch(store_id: str, batch_id: str, request: Request, key: CurrentKey) -> dict:
    return await _service(request).batch(key.project_id, store_id, batch_id)


@router.post("/v1/vector_stores/{store_id}/file_batches/{batch_id}/cancel")
async def cancel_batch(store_id: str, batch_id: str, request: Request, key: CurrentKey) -> dict:
    return await _service(request).cancel_batch(key.project_id, store_id, batch_id)


@router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}/files")
async def batch_files(
    store_id: str, batch_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None, before: str | None = None, filter: str | None = None,
) -> dict:  # fmt: skip
    service = _service(request)
    await service.batch(key.project_id, store_id, batch_id)
    files = await service.files(key.project_id, store_id, order, _status(filter), batch_id)
    return cursor_page(files, lambda f: f["id"], after=after, before=before, limit=limit)
