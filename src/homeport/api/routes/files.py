"""/v1/files and /v1/uploads: OpenAI's file API, scoped by the key's project."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import FormData, UploadFile

from ...errors import InvalidRequest
from ...protocol.files import UploadComplete, UploadCreate
from ...services.retrieval.files import FileStore
from ..body import parse_body
from ..deps import CurrentKey
from ..pagination import cursor_page

router = APIRouter()


def _files(request: Request) -> FileStore:
    return request.app.state.files


async def _form(request: Request) -> FormData:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest("This endpoint takes multipart/form-data.")
    return await request.form(max_files=1, max_fields=20)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a text field.", param=name)
    return value


def _file_field(form: FormData, name: str) -> UploadFile:
    value = form.get(name)
    if not isinstance(value, UploadFile):
        raise InvalidRequest(f"Missing required parameter: '{name}' (a file).", param=name)
    return value


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(1 << 20):
        yield chunk


@router.post("/v1/files")
async def create_file(request: Request, key: CurrentKey) -> dict:
    form = await _form(request)
    upload = _file_field(form, "file")
    purpose = _field(form, "purpose")
    expires = None
    if "expires_after[seconds]" in form or "expires_after[anchor]" in form:
        if form.get("expires_after[anchor]") != "created_at":
            raise InvalidRequest("expires_after[anchor] must be 'created_at'.", param="expires_after.anchor")
        seconds = str(form.get("expires_after[seconds]", ""))
        if not seconds.isdigit() or not 3600 <= int(seconds) <= 2592000:
            raise InvalidRequest("expires_after[seconds] must be between 3600 and 2592000.",
                                 param="expires_after.seconds")  # fmt: skip
        expires = int(seconds)
    try:
        stored = await _files(request).create(key.project_id, upload.filename or "upload", purpose, _chunks(upload),
                                              expires)  # fmt: skip
    finally:
        await form.close()
    return stored.wire()


@router.get("/v1/files")
async def list_files(
    request: Request, key: CurrentKey, purpose: str | None = None, limit: int = 10000,
    order: Literal["asc", "desc"] = "desc", after: str | None = None,
) -> dict:  # fmt: skip
    files = await _files(request).list_files(key.project_id, purpose, order)
    return cursor_page(files, lambda f: f.id, after=after, limit=limit, most=10000, dump=lambda f: f.wire())


@router.get("/v1/files/{file_id}")
async def retrieve_file(file_id: str, request: Request, key: CurrentKey) -> dict:
    return (await _files(request).get(key.project_id, file_id)).wire()


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: str, request: Request, key: CurrentKey) -> dict:
    await request.app.state.vector_stores.forget_file(key.project_id, file_id)
    await _files(request).delete(key.project_id, file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/v1/files/{file_id}/content")
async def file_content(file_id: str, request: Request, key: CurrentKey) -> StreamingResponse:
    store = _files(request)
    found = await store.get(key.project_id, file_id)
    return StreamingResponse(store.content(found), media_type="application/octet-stream",
                             headers={"content-length": str(found.bytes)})  # fmt: skip


@router.post("/v1/uploads")
async def create_upload(request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, UploadCreate)
    upload = await _files(request).create_upload(key.project_id, body.filename, body.purpose, body.bytes,
                                                 body.mime_type)  # fmt: skip
    return upload.wire()


@router.post("/v1/uploads/{upload_id}/parts")
async def add_upload_part(upload_id: str, request: Request, key: CurrentKey) -> dict:
    form = await _form(request)
    try:
        return await _files(request).add_part(key.project_id, upload_id, _chunks(_file_field(form, "data")))
    finally:
        await form.close()


@router.post("/v1/uploads/{upload_id}/complete")
async def complete_upload(upload_id: str, request: Request, key: CurrentKey) -> dict:
    body = await parse_body(request, UploadComplete)
    return (await _files(request).complete_upload(key.project_id, upload_id, body.part_ids)).wire()


@router.post("/v1/uploads/{upload_id}/cancel")
async def cancel_upload(upload_id: str, request: Request, key: CurrentKey) -> dict:
    return (await _files(request).cancel_upload(key.project_id, upload_id)).wire()
