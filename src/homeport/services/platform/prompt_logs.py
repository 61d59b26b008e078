"""Prompt logs of the projects that opt in (`homeport projects set NAME --log-prompts`): each
request with its output, stored in the database — sealed when encryption at rest is on — where
retention, erasure and export reach them. Read with `homeport prompts list --project NAME`."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select

from ...ids import sortable_id
from ...storage.db import Database
from ...storage.sealing import Sealer
from ...storage.tables import PromptLogRow

__all__ = ["PromptLogs", "end_user"]


def end_user(request: dict[str, Any]) -> str | None:
    """The end user a request names: `user`, `safety_identifier` or `metadata.user_id`."""
    metadata = request.get("metadata")
    found = request.get("safety_identifier") or request.get("user")
    if not found and isinstance(metadata, dict):
        found = metadata.get("user_id")
    return str(found)[:512] if found else None


class PromptLogs:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db, self._sealer = db, sealer

    async def record(self, project_id: str | None, key_id: str | None, request_id: str | None,
                     request: dict[str, Any], output: Any) -> None:  # fmt: skip
        body = json.dumps({"request": request, "response": output}, ensure_ascii=False)
        row = PromptLogRow(id=sortable_id("plog_"), ts=int(time.time()), project_id=project_id, key_id=key_id,
                           request_id=request_id, end_user=end_user(request), body=self._sealer.seal(body))  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            session.add(row)

    async def of_requests(self, request_ids: list[str], project_id: str | None) -> dict[str, dict[str, Any]]:
        """The logs of these requests (those that have one), by request id; only `project_id`'s when given."""
        query = select(PromptLogRow).where(PromptLogRow.request_id.in_(request_ids))
        if project_id is not None:
            query = query.where(PromptLogRow.project_id == project_id)
        async with self._db.sessions() as session:
            rows = list(await session.scalars(query))
        return {r.request_id: json.loads(self._sealer.open(r.body)) for r in rows if r.request_id}

    async def list(self, project_id: str | None, since: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Oldest first, from `since` (Unix seconds)."""
        query = (select(PromptLogRow).where(PromptLogRow.project_id == project_id, PromptLogRow.ts >= since)
                 .order_by(PromptLogRow.id).limit(limit))  # fmt: skip
        async with self._db.sessions() as session:
            rows = list(await session.scalars(query))
        return [{"id": r.id, "ts": r.ts, "key_id": r.key_id, "request_id": r.request_id,
                 **json.loads(self._sealer.open(r.body))} for r in rows]  # fmt: skip
