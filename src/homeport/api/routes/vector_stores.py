"""/v1/vector_stores: stores, their files and file batches, and search — scoped by the key's project."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ...errors import InvalidRequest
from ...ids import sortable_id
from ...protocol.common import Deleted
from ...protocol.vector_stores import (
    SearchResultsPage,
    VectorStore,
    VectorStoreCreate,
    VectorStoreFile,
    VectorStoreFileAttach,
    VectorStoreFileBatch,
    VectorStoreFileBatchCreate,
    VectorStoreFileContent,
    VectorStoreFileUpdate,
    VectorStoreSearch,
    VectorStoreUpdate,
)
from ...services.retrieval.stores import FileSettings, VectorStoreService
from ..body import parse_body
from ..deps import CurrentKey
from ..pagination import cursor_page

router = APIRouter()

Order = Literal["asc", "desc"]
FileStatus = Literal["in_progress", "completed", "failed", "cancelled"]


def _service(request: Request) -> VectorStoreService:
    return request.app.state.vector_stores


def _dump(obj: BaseModel) -> dict[str, Any]:
    return obj.model_dump(mode="json")


@router.post("/v1/vector_stores")
async def create_store(request: Request, key: CurrentKey) -> VectorStore:
    return await _service(request).create(key.project_id, await parse_body(request, VectorStoreCreate))


@router.get("/v1/vector_stores")
async def list_stores(
    request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc", after: str | None = None,
    before: str | None = None,
) -> dict:  # fmt: skip
    stores = await _service(request).list_stores(key.project_id, order)
    return cursor_page(stores, lambda s: s.id, after=after, before=before, limit=limit, dump=_dump)


@router.get("/v1/vector_stores/{store_id}")
async def retrieve_store(store_id: str, request: Request, key: CurrentKey) -> VectorStore:
    return await _service(request).retrieve(key.project_id, store_id)


@router.post("/v1/vector_stores/{store_id}")
async def update_store(store_id: str, request: Request, key: CurrentKey) -> VectorStore:
    body = await parse_body(request, VectorStoreUpdate)
    return await _service(request).update(key.project_id, store_id, body)


@router.delete("/v1/vector_stores/{store_id}")
async def delete_store(store_id: str, request: Request, key: CurrentKey) -> Deleted:
    await _service(request).delete(key.project_id, store_id)
    return Deleted(id=store_id, object="vector_store.deleted")


@router.post("/v1/vector_stores/{store_id}/search")
async def search_store(store_id: str, request: Request, key: CurrentKey) -> SearchResultsPage:
    body = await parse_body(request, VectorStoreSearch)
    return await _service(request).search(key.project_id, store_id, body)


@router.post("/v1/vector_stores/{store_id}/files")
async def attach_file(store_id: str, request: Request, key: CurrentKey) -> VectorStoreFile:
    body = await parse_body(request, VectorStoreFileAttach)
    service = _service(request)
    await service.attach(
        key.project_id, store_id, [body.file_id], FileSettings(body.chunking_strategy, body.attributes)
    )
    return await service.file(key.project_id, store_id, body.file_id)


@router.get("/v1/vector_stores/{store_id}/files")
async def list_files(
    store_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None, before: str | None = None, filter: FileStatus | None = None,
) -> dict:  # fmt: skip
    files = await _service(request).files(key.project_id, store_id, order, filter)
    return cursor_page(files, lambda f: f.id, after=after, before=before, limit=limit, dump=_dump)


@router.get("/v1/vector_stores/{store_id}/files/{file_id}")
async def retrieve_file(store_id: str, file_id: str, request: Request, key: CurrentKey) -> VectorStoreFile:
    return await _service(request).file(key.project_id, store_id, file_id)


@router.post("/v1/vector_stores/{store_id}/files/{file_id}")
async def update_file(store_id: str, file_id: str, request: Request, key: CurrentKey) -> VectorStoreFile:
    body = await parse_body(request, VectorStoreFileUpdate)
    return await _service(request).update_file(key.project_id, store_id, file_id, body.attributes)


@router.delete("/v1/vector_stores/{store_id}/files/{file_id}")
async def remove_file(store_id: str, file_id: str, request: Request, key: CurrentKey) -> Deleted:
    await _service(request).remove_file(key.project_id, store_id, file_id)
    return Deleted(id=file_id, object="vector_store.file.deleted")


@router.get("/v1/vector_stores/{store_id}/files/{file_id}/content")
async def file_content(store_id: str, file_id: str, request: Request, key: CurrentKey) -> VectorStoreFileContent:
    return VectorStoreFileContent(data=await _service(request).file_content(key.project_id, store_id, file_id))


@router.post("/v1/vector_stores/{store_id}/file_batches")
async def create_batch(store_id: str, request: Request, key: CurrentKey) -> VectorStoreFileBatch:
    body = await parse_body(request, VectorStoreFileBatchCreate)
    if (body.file_ids is None) == (body.files is None):
        raise InvalidRequest("Give exactly one of 'file_ids' or 'files'.", param="file_ids")
    per_file = {f.file_id: FileSettings(f.chunking_strategy, f.attributes) for f in body.files or []}
    file_ids = body.file_ids if body.file_ids is not None else list(per_file)
    if not file_ids:
        raise InvalidRequest("A batch needs at least one file.", param="file_ids")
    batch_id = sortable_id("vsfb_")
    service = _service(request)
    default = FileSettings(body.chunking_strategy, body.attributes)
    await service.attach(key.project_id, store_id, file_ids, default, batch_id, per_file or None)
    return await service.batch(key.project_id, store_id, batch_id)


@router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}")
async def retrieve_batch(store_id: str, batch_id: str, request: Request, key: CurrentKey) -> VectorStoreFileBatch:
    return await _service(request).batch(key.project_id, store_id, batch_id)


@router.post("/v1/vector_stores/{store_id}/file_batches/{batch_id}/cancel")
async def cancel_batch(store_id: str, batch_id: str, request: Request, key: CurrentKey) -> VectorStoreFileBatch:
    return await _service(request).cancel_batch(key.project_id, store_id, batch_id)


@router.get("/v1/vector_stores/{store_id}/file_batches/{batch_id}/files")
async def batch_files(
    store_id: str, batch_id: str, request: Request, key: CurrentKey, limit: int = 20, order: Order = "desc",
    after: str | None = None, before: str | None = None, filter: FileStatus | None = None,
) -> dict:  # fmt: skip
    service = _service(request)
    await service.batch(key.project_id, store_id, batch_id)
    files = await service.files(key.project_id, store_id, order, filter, batch_id)
    return cursor_page(files, lambda f: f.id, after=after, before=before, limit=limit, dump=_dump)
