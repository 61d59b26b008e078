"""A project's stored data, as compliance sees it: erased for one end user, or pruned by age.

Deletions go through the services that own each object, so what hangs off it goes too (a file's
blob; a vector store's chunks and index; a thread's messages, runs and steps; a response's events;
a conversation's items). Nothing here imports upward: this folder sits above the others.

- **Erasure** (`erase_user`): every stored object whose `user`, `safety_identifier` or
  `metadata.user_id` names the end user: responses, conversations, stored chat completions,
  assistants, threads (with their messages and runs), messages, vector stores, batches, and
  prompt logs of requests that named the user.
  Files carry no metadata in OpenAI's API, so they are matched by no user; usage records name
  keys and projects, never end users.
- **Retention** (`prune`, hourly): a project's files, vector stores (by last activity), stored
  chat completions, threads, batches, prompt logs and raw usage records older than its
  `retention_days`.
  Responses and conversations have their own job (services/responses/retention.py), which falls
  back to the same setting.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any

from sqlalchemy import delete, or_, select

from ...errors import NotFound
from ...storage.db import Database
from ...storage.jobs import Hourly, Jobs
from ...storage.tables import (
    AssistantObjectRow,
    BatchResultRow,
    BatchRow,
    ConversationRow,
    FileRow,
    ProjectRow,
    PromptLogRow,
    ResponseRow,
    StoredCompletionRow,
    UsageRow,
    VectorStoreRow,
)
from ..assistants.objects import Documents
from ..inference.stored import StoredCompletions
from ..responses.store import ConversationStore, ResponseStore
from ..retrieval.files import FileStore
from ..retrieval.stores import VectorStoreService

__all__ = ["ProjectData"]

log = logging.getLogger(__name__)


class ProjectData:
    def __init__(self, db: Database, files: FileStore, stores: VectorStoreService, jobs: Jobs) -> None:
        self._db, self._files, self._stores = db, files, stores
        self._responses, self._conversations = ResponseStore(db), ConversationStore(db)
        self._completions, self._docs = StoredCompletions(db), Documents(db)
        self._hourly = Hourly(jobs, "prune_project_data", self.prune)

    async def start(self) -> None:
        await self._hourly.start()

    # ---- erasure ------------------------------------------------------------------------

    async def erase_user(self, user: str) -> dict[str, int]:
        """Delete every stored object that names `user`; returns how many of each kind."""
        erased: Counter[str] = Counter()
        needle = f"%{json.dumps(user)[1:-1]}%"  # a cheap filter in SQL; the JSON decides
        for row in await self._rows(ResponseRow, ResponseRow.body.like(needle)):
            if _names(json.loads(row.body), user):
                await self._gone(self._responses.delete(row.project_id, row.id), erased, "responses")
        for row in await self._rows(ConversationRow, ConversationRow.metadata_json.like(needle)):
            if _names({"metadata": json.loads(row.metadata_json)}, user):
                await self._gone(self._conversations.delete(row.project_id, row.id), erased, "conversations")
        for row in await self._rows(StoredCompletionRow, or_(StoredCompletionRow.metadata_json.like(needle),
                                                             StoredCompletionRow.body.like(needle))):  # fmt: skip
            if _names({"metadata": json.loads(row.metadata_json)}, user) or _names(json.loads(row.body), user):
                await self._gone(self._completions.delete(row.project_id, row.id), erased, "chat_completions")
        for row in await self._rows(VectorStoreRow, VectorStoreRow.metadata_json.like(needle)):
            if _names({"metadata": json.loads(row.metadata_json)}, user):
                await self._gone(self._stores.delete(row.project_id, row.id), erased, "vector_stores")
        for row in await self._rows(AssistantObjectRow, AssistantObjectRow.body.like(needle)):
            if row.kind in ("assistant", "thread", "message") and _names(json.loads(row.body), user):
                await self._docs.delete(row.id)  # a thread takes its messages, runs and steps with it
                erased[f"{row.kind}s"] += 1
        for row in await self._rows(BatchRow, BatchRow.body.like(needle)):
            if _names(json.loads(row.body), user):
                await self._delete_batch(row.id)
                erased["batches"] += 1
        async with self._db.sessions() as session, session.begin():
            gone = await session.execute(delete(PromptLogRow).where(PromptLogRow.end_user == user))
            if count := int(gone.rowcount or 0):  # type: ignore[attr-defined]
                erased["prompt_logs"] += count
        return dict(erased)

    # ---- retention ----------------------------------------------------------------------

    async def prune(self, now: float | None = None) -> dict[str, int]:
        """Delete each project's data older than its `retention_days`; returns how many of each kind."""
        now = now or time.time()
        async with self._db.sessions() as session:
            kept = (await session.execute(select(ProjectRow.id, ProjectRow.retention_days)
                                          .where(ProjectRow.retention_days.is_not(None)))).all()  # fmt: skip
        pruned: Counter[str] = Counter()
        for project_id, days in kept:
            cutoff = int(now - (days or 0) * 86400)
            for row in await self._rows(FileRow, FileRow.project_id == project_id, FileRow.created_at < cutoff):
                await self._gone(self._files.delete(project_id, row.id), pruned, "files")
            old_stores = (VectorStoreRow.project_id == project_id, VectorStoreRow.last_active_at < cutoff)
            for row in await self._rows(VectorStoreRow, *old_stores):
                await self._gone(self._stores.delete(project_id, row.id), pruned, "vector_stores")
            old_completions = (StoredCompletionRow.project_id == project_id, StoredCompletionRow.created_at < cutoff)
            for row in await self._rows(StoredCompletionRow, *old_completions):
                await self._gone(self._completions.delete(project_id, row.id), pruned, "chat_completions")
            c = AssistantObjectRow
            for row in await self._rows(c, c.project_id == project_id, c.kind == "thread", c.created_at < cutoff):
                await self._docs.delete(row.id)
                pruned["threads"] += 1
            for row in await self._rows(BatchRow, BatchRow.project_id == project_id, BatchRow.created_at < cutoff):
                await self._delete_batch(row.id)
                pruned["batches"] += 1
            async with self._db.sessions() as session, session.begin():
                for table, kind in ((UsageRow, "usage_records"), (PromptLogRow, "prompt_logs")):
                    gone = await session.execute(delete(table).where(table.project_id == project_id,
                                                                     table.ts < cutoff))  # fmt: skip
                    if count := int(gone.rowcount or 0):  # type: ignore[attr-defined]
                        pruned[kind] += count
        if pruned:
            log.info("project data retention: deleted %s", dict(pruned))
        return dict(pruned)

    # ---- helpers ------------------------------------------------------------------------

    async def _rows(self, table: Any, *where: Any) -> list[Any]:
        async with self._db.sessions() as session:
            return list(await session.scalars(select(table).where(*where)))

    @staticmethod
    async def _gone(deletion: Any, counts: Counter[str], kind: str) -> None:
        try:
            await deletion
        except NotFound:  # deleted meanwhile (by its owner, or with its thread)
            return
        counts[kind] += 1

    async def _delete_batch(self, batch_id: str) -> None:
        async with self._db.sessions() as session, session.begin():
            await session.execute(delete(BatchResultRow).where(BatchResultRow.batch_id == batch_id))
            await session.execute(delete(BatchRow).where(BatchRow.id == batch_id))


def _names(obj: Any, user: str) -> bool:
    """Whether an object (a response, a request, an object with metadata) names the end user."""
    if not isinstance(obj, dict):
        return False
    metadata = obj.get("metadata")
    return (obj.get("user") == user or obj.get("safety_identifier") == user
            or (isinstance(metadata, dict) and metadata.get("user_id") == user))  # fmt: skip
