"""Retention of stored responses and conversations, per project (`response_retention_days`, or
else the project's `retention_days`; unset: kept). An hourly job on the shared queue deletes a
project's responses older than its retention, and its conversations (with their items) whose last
item is that old."""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete, func, select

from ...storage.db import Database
from ...storage.jobs import Hourly, Jobs
from ...storage.tables import ConversationItemRow, ConversationRow, ProjectRow, ResponseRow

__all__ = ["Retention"]

log = logging.getLogger(__name__)


class Retention:
    def __init__(self, db: Database, jobs: Jobs) -> None:
        self._db = db
        self._hourly = Hourly(jobs, "prune_responses", self.prune)

    async def start(self) -> None:
        await self._hourly.start()

    async def prune(self, now: float | None = None) -> tuple[int, int]:
        """(responses, conversations) deleted."""
        now = now or time.time()
        async with self._db.sessions() as session:
            retained = func.coalesce(ProjectRow.response_retention_days, ProjectRow.retention_days)
            kept = (await session.execute(select(ProjectRow.id, retained).where(retained.is_not(None)))).all()
        responses = conversations = 0
        for project_id, days in kept:
            cutoff = int(now - (days or 0) * 86400)
            async with self._db.sessions() as session, session.begin():
                gone = await session.execute(delete(ResponseRow).where(ResponseRow.project_id == project_id,
                                                                       ResponseRow.created_at < cutoff))  # fmt: skip
                responses += gone.rowcount  # type: ignore[attr-defined]
                last = select(func.max(ConversationItemRow.created_at)).where(
                    ConversationItemRow.conversation_id == ConversationRow.id).scalar_subquery()  # fmt: skip
                idle = list(await session.scalars(select(ConversationRow.id).where(
                    ConversationRow.project_id == project_id, ConversationRow.created_at < cutoff,
                    func.coalesce(last, 0) < cutoff)))  # fmt: skip
                if idle:
                    await session.execute(
                        delete(ConversationItemRow).where(ConversationItemRow.conversation_id.in_(idle))
                    )
                    await session.execute(delete(ConversationRow).where(ConversationRow.id.in_(idle)))
                conversations += len(idle)
        if responses or conversations:
            log.info("response retention: deleted %d responses and %d conversations", responses, conversations)
        return responses, conversations
