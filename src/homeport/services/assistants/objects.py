"""Assistants, threads, messages, runs and run steps as documents: each object is stored as its
wire JSON in `assistant_objects`, with the columns lookups need, scoped by project (another
project's object is not found). Ids are time-sortable, so lists order by id.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from sqlalchemy import delete, select, update

from ...errors import NotFound
from ...ids import sortable_id
from ...storage.db import Database, in_project, ordered
from ...storage.tables import AssistantObjectRow

__all__ = ["Document", "Documents", "Kind"]

Kind = Literal["assistant", "thread", "message", "run", "step"]
Document = dict[str, Any]
"""An object as the API shows it, plus fields Homeport keeps for itself (named `_…`)."""

_PREFIX = {"assistant": "asst_", "thread": "thread_", "message": "msg_", "run": "run_", "step": "step_"}
_NAMES = {"assistant": "assistant", "thread": "thread", "message": "message", "run": "run", "step": "run step"}


class Documents:
    """The rows of assistant_objects as dicts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        kind: Kind,
        project_id: str | None,
        body: Document,
        *,
        thread_id: str | None = None,
        run_id: str | None = None,
    ) -> Document:
        body.setdefault("id", sortable_id(_PREFIX[kind]))
        body.setdefault("created_at", int(time.time()))
        row = AssistantObjectRow(
            id=body["id"],
            kind=kind,
            project_id=project_id,
            thread_id=thread_id,
            run_id=run_id,
            status=body.get("status"),
            created_at=body["created_at"],
            body=json.dumps(body),
        )
        async with self._db.sessions() as session, session.begin():
            session.add(row)
        return body

    async def get(self, kind: Kind, project_id: str | None, object_id: str, param: str | None = None) -> Document:
        async with self._db.sessions() as session:
            body = await session.scalar(
                select(AssistantObjectRow.body).where(
                    AssistantObjectRow.id == object_id,
                    AssistantObjectRow.kind == kind,
                    in_project(AssistantObjectRow.project_id, project_id),
                )
            )
        if body is None:
            raise NotFound(f"No {_NAMES[kind]} found with id '{object_id}'.", param=param)
        return json.loads(body)

    async def list_of(
        self,
        kind: Kind,
        project_id: str | None,
        *,
        thread_id: str | None = None,
        run_id: str | None = None,
        order: str = "desc",
        status: list[str] | None = None,
    ) -> list[Document]:
        c = AssistantObjectRow
        query = select(c.body).where(c.kind == kind, in_project(c.project_id, project_id))
        if thread_id is not None:
            query = query.where(c.thread_id == thread_id)
        if run_id is not None:
            query = query.where(c.run_id == run_id)
        if status is not None:
            query = query.where(c.status.in_(status))
        query = ordered(query, order, c.id)
        async with self._db.sessions() as session:
            return [json.loads(b) for b in await session.scalars(query)]

    async def save(self, body: Document, *, only_if_status: list[str] | None = None) -> bool:
        """Write the object back; with `only_if_status`, only if its stored status is one of them."""
        query = update(AssistantObjectRow).where(AssistantObjectRow.id == body["id"])
        if only_if_status is not None:
            query = query.where(AssistantObjectRow.status.in_(only_if_status))
        async with self._db.sessions() as session, session.begin():
            result = await session.execute(query.values(body=json.dumps(body), status=body.get("status")))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def status(self, object_id: str) -> str | None:
        async with self._db.sessions() as session:
            return await session.scalar(select(AssistantObjectRow.status).where(AssistantObjectRow.id == object_id))

    async def delete(self, object_id: str) -> None:
        async with self._db.sessions() as session, session.begin():
            await session.execute(
                delete(AssistantObjectRow).where(
                    (AssistantObjectRow.id == object_id) | (AssistantObjectRow.thread_id == object_id)
                )
            )

    async def claim(self, run_id: str) -> bool:
        """queued → in_progress, for exactly one worker (one conditional UPDATE)."""
        c = AssistantObjectRow
        query = update(c).where(c.id == run_id, c.status == "queued")
        async with self._db.sessions() as session, session.begin():
            result = await session.execute(query.values(status="in_progress"))
        return bool(result.rowcount)  # type: ignore[attr-defined]
