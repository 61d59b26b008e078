"""A project's stored data: files (list, upload, download, delete), vector stores (list, search
showing chunks and scores), and its batches, stored responses and conversations.

Everything is one project's: a project key's own; an admin picks one (`?project=`). The same
services as the API serve these pages, so the same checks hold; a key limited to some endpoint
families, or read-only, is limited here alike."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from starlette.datastructures import UploadFile

from ...errors import HomeportError, PermissionDenied
from ...protocol.vector_stores import VectorStoreSearch
from ...storage.db import in_project
from ...storage.tables import ConversationRow, ResponseRow
from .render import back, page
from .routing import DashboardRoute
from .session import SignedIn, Viewer

router = APIRouter(route_class=DashboardRoute)

UPLOAD_PATH = "/dashboard/data/files"


async def _project(request: Request, viewer: Viewer) -> tuple[str | None, list[Any]]:
    """The project shown (a project key's own; an admin's choice, first project by default), and
    the projects an admin may choose from."""
    if not viewer.admin:
        return viewer.key.project_id, []
    projects = await request.app.state.projects.list(include_archived=False)
    wanted = request.query_params.get("project")
    chosen = next((p.id for p in projects if p.id == wanted), projects[0].id if projects else None)
    return chosen, projects


def _may(viewer: Viewer, family: str, write: bool = False) -> None:
    key = viewer.key
    if key.endpoints is not None and family not in key.endpoints:
        raise PermissionDenied(f"This API key may not use {family}.")
    if write and key.read_only:
        raise PermissionDenied("This API key is read-only.")


def _here(path: str, project: str | None, viewer: Viewer) -> str:
    return f"{path}?project={project}" if viewer.admin and project else path


@router.get("/dashboard/data")
async def data_page(request: Request, viewer: SignedIn) -> Response:
    project, projects = await _project(request, viewer)
    files = stores = []
    if viewer.key.endpoints is None or "files" in viewer.key.endpoints:
        files = await request.app.state.files.list_files(project, None, "desc")
    if viewer.key.endpoints is None or "vector_stores" in viewer.key.endpoints:
        stores = await request.app.state.vector_stores.list_stores(project, "desc")
    results, query, store_id = None, request.query_params.get("q", ""), request.query_params.get("store", "")
    if query and store_id:
        _may(viewer, "vector_stores")
        try:
            found = await request.app.state.vector_stores.search(project, store_id, VectorStoreSearch(query=query))
            results = found.data
        except HomeportError as exc:
            return back(_here("/dashboard/data", project, viewer), error=f"Search failed: {exc.message}")
    return page(request, viewer, "data.html", project=project, projects=projects, files=files, stores=stores,
                results=results, query=query, store_id=store_id)  # fmt: skip


@router.post(UPLOAD_PATH)
async def upload_file(request: Request, viewer: SignedIn) -> Response:
    _may(viewer, "files", write=True)
    project, _ = await _project(request, viewer)
    here = _here("/dashboard/data", project, viewer)
    form = await request.form()
    upload, purpose = form.get("file"), str(form.get("purpose") or "user_data")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return back(here, error="Choose a file to upload.")

    async def chunks():  # type: ignore[no-untyped-def]
        while chunk := await upload.read(1 << 20):
            yield chunk

    try:
        stored = await request.app.state.files.create(project, upload.filename, purpose, chunks())
    except HomeportError as exc:
        return back(here, error=f"Upload failed: {exc.message}")
    return back(here, notice=f"Uploaded {stored.filename} as {stored.id}.")


@router.post("/dashboard/data/files/{file_id}/delete")
async def delete_file(file_id: str, request: Request, viewer: SignedIn) -> Response:
    _may(viewer, "files", write=True)
    project, _ = await _project(request, viewer)
    here = _here("/dashboard/data", project, viewer)
    try:
        await request.app.state.files.delete(project, file_id)
    except HomeportError as exc:
        return back(here, error=exc.message)
    return back(here, notice=f"Deleted {file_id}.")


@router.get("/dashboard/data/files/{file_id}/content")
async def file_content(file_id: str, request: Request, viewer: SignedIn) -> Response:
    _may(viewer, "files")
    project, _ = await _project(request, viewer)
    files = request.app.state.files
    found = await files.get(project, file_id)
    safe = found.filename.replace('"', "")
    return StreamingResponse(files.content(found), media_type="application/octet-stream",
                             headers={"content-disposition": f'attachment; filename="{safe}"'})  # fmt: skip


# ---------------------------------------------------------------- batches, responses, conversations


async def _latest(request: Request, table: Any, project: str | None, limit: int = 50) -> list[Any]:
    query = select(table).where(in_project(table.project_id, project)).order_by(table.created_at.desc()).limit(limit)
    async with request.app.state.db.sessions() as session:
        return list(await session.scalars(query))


def _response_summary(row: ResponseRow) -> dict[str, Any]:
    body = json.loads(row.body)
    texts = [part.get("text", "") for item in body.get("output") or [] if item.get("type") == "message"
             for part in item.get("content") or [] if part.get("type") == "output_text"]  # fmt: skip
    return {"id": row.id, "status": row.status, "created_at": row.created_at, "model": body.get("model"),
            "output": "".join(texts), "usage": body.get("usage") or {}, "error": body.get("error")}  # fmt: skip


@router.get("/dashboard/work")
async def work_page(request: Request, viewer: SignedIn) -> Response:
    project, projects = await _project(request, viewer)
    allowed = viewer.key.endpoints
    batches = await request.app.state.batches.find(project) if allowed is None or "batches" in allowed else []
    responses, conversations = [], []
    if allowed is None or "responses" in allowed:
        responses = [_response_summary(r) for r in await _latest(request, ResponseRow, project)]
        conversations = await _latest(request, ConversationRow, project)
    return page(request, viewer, "work.html", project=project, projects=projects, batches=batches[:50],
                responses=responses, conversations=conversations)  # fmt: skip
