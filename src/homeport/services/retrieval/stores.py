"""Vector stores: their files and file batches, and search — scoped by project.

Attaching a file records it `in_progress` and hands it to ingestion (ingest.py, a job on the
shared queue); searching goes through search.py. Every lookup is scoped by project, so another
project's store is not found.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update

from ...errors import InvalidRequest, NotFound
from ...ids import sortable_id
from ...protocol.vector_stores import (
    Attributes,
    ChunkingStrategy,
    SearchResultsPage,
    TextContent,
    VectorStore,
    VectorStoreCreate,
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreSearch,
    VectorStoreUpdate,
)
from ...storage.db import Database, in_project, ordered
from ...storage.tables import ChunkRow, FileBatchRow, VectorStoreFileRow, VectorStoreRow
from ..inference.registry import ModelRegistry
from .extract import check_supported
from .files import FileStore, StoredFile
from .indexes import Indexes
from .ingest import Ingestion, bump_version
from .objects import chunking, file_counts, file_object, store_object
from .search import Search

__all__ = ["FileSettings", "VectorStoreService"]


@dataclass(frozen=True)
class FileSettings:
    """How one file is attached: its chunking strategy and attributes."""

    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None


class VectorStoreService:
    def __init__(
        self, db: Database, files: FileStore, registry: ModelRegistry, indexes: Indexes, ingestion: Ingestion,
        model: str,
    ) -> None:  # fmt: skip
        self._db, self._files, self._registry, self._indexes = db, files, registry, indexes
        self.ingestion, self._model = ingestion, model
        self.search_index = Search(db, files, registry, indexes)

    # ---- stores -------------------------------------------------------------------------

    async def store_row(self, project_id: str | None, store_id: str) -> VectorStoreRow:
        """The store's row; not found outside its project."""
        async with self._db.sessions() as session:
            row = await session.scalar(
                select(VectorStoreRow).where(VectorStoreRow.id == store_id,
                                             in_project(VectorStoreRow.project_id, project_id))
            )  # fmt: skip
        if row is None:
            raise NotFound(f"No vector store found with id '{store_id}'.", param="vector_store_id")
        return row

    async def _object(self, row: VectorStoreRow) -> VectorStore:
        async with self._db.sessions() as session:
            counts = dict((await session.execute(
                select(VectorStoreFileRow.status, func.count()).where(VectorStoreFileRow.vector_store_id == row.id)
                .group_by(VectorStoreFileRow.status))).all())  # fmt: skip
            usage = await session.scalar(
                select(func.coalesce(func.sum(VectorStoreFileRow.usage_bytes), 0))
                .where(VectorStoreFileRow.vector_store_id == row.id)
            )  # fmt: skip
        return store_object(row, counts, int(usage or 0))

    async def create(self, project_id: str | None, body: VectorStoreCreate) -> VectorStore:
        strategy = chunking(body.chunking_strategy)
        file_ids = body.file_ids or []
        files = [await self._attachable(project_id, f, f"file_ids.[{i}]") for i, f in enumerate(file_ids)]
        self._registry.embedding(self._model)  # the embedding model must be loaded
        now = int(time.time())
        row = VectorStoreRow(id=sortable_id("vs_"), project_id=project_id, name=body.name or "",
                             created_at=now, last_active_at=now, metadata_json=json.dumps(body.metadata or {}),
                             expires_after_days=body.expires_after.days if body.expires_after else None,
                             model=self._model, version=0)  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            session.add(row)
            for f in files:
                session.add(_link(row.id, f, strategy, {}, None, now))
        for f in files:
            await self.ingestion.enqueue(row.id, f.id)
        return await self._object(row)

    async def _attachable(self, project_id: str | None, file_id: str, param: str) -> StoredFile:
        stored = await self._files.get(project_id, file_id, param=param)
        check_supported(stored.filename, param=param)
        return stored

    async def list_stores(self, project_id: str | None, order: str) -> list[VectorStore]:
        query = select(VectorStoreRow).where(in_project(VectorStoreRow.project_id, project_id))
        async with self._db.sessions() as session:
            rows = list(await session.scalars(ordered(query, order, VectorStoreRow.created_at, VectorStoreRow.id)))
        return [await self._object(r) for r in rows]

    async def retrieve(self, project_id: str | None, store_id: str) -> VectorStore:
        return await self._object(await self.store_row(project_id, store_id))

    async def update(self, project_id: str | None, store_id: str, body: VectorStoreUpdate) -> VectorStore:
        row = await self.store_row(project_id, store_id)
        given = body.model_fields_set
        values: dict[str, Any] = {}
        if body.name is not None:
            values["name"] = body.name
        if "metadata" in given:
            values["metadata_json"] = json.dumps(body.metadata or {})
        if "expires_after" in given:  # null: never expires
            values["expires_after_days"] = body.expires_after.days if body.expires_after else None
        if values:
            async with self._db.sessions() as session, session.begin():
                await session.execute(update(VectorStoreRow).where(VectorStoreRow.id == row.id).values(**values))
        return await self.retrieve(project_id, store_id)

    async def delete(self, project_id: str | None, store_id: str) -> None:
        row = await self.store_row(project_id, store_id)
        async with self._db.sessions() as session, session.begin():
            for table in (ChunkRow, VectorStoreFileRow, FileBatchRow):
                await session.execute(delete(table).where(table.vector_store_id == row.id))
            await session.execute(delete(VectorStoreRow).where(VectorStoreRow.id == row.id))
        await self._indexes.drop(row.id)

    # ---- files in a store ---------------------------------------------------------------

    async def attach(
        self, project_id: str | None, store_id: str, file_ids: list[str], default: FileSettings = FileSettings(),
        batch_id: str | None = None, per_file: dict[str, FileSettings] | None = None,
    ) -> list[VectorStoreFileRow]:  # fmt: skip
        """Attach files (each may carry its own settings in `per_file`)."""
        row = await self.store_row(project_id, store_id)
        links = []
        now = int(time.time())
        for i, file_id in enumerate(file_ids):
            stored = await self._attachable(project_id, file_id, f"file_ids.[{i}]" if batch_id else "file_id")
            own = (per_file or {}).get(file_id, default)
            links.append(_link(row.id, stored, chunking(own.chunking_strategy), own.attributes or {}, batch_id, now))
        async with self._db.sessions() as session, session.begin():
            if batch_id is not None:
                session.add(FileBatchRow(id=batch_id, vector_store_id=row.id, created_at=now, cancelled=False))
            for link in links:
                # Attaching again re-ingests: the old chunks go first.
                await _detach(session, row.id, link.file_id)
                session.add(link)
        for link in links:
            await self.ingestion.enqueue(row.id, link.file_id)
        return links

    async def file(self, project_id: str | None, store_id: str, file_id: str) -> VectorStoreFile:
        await self.store_row(project_id, store_id)
        async with self._db.sessions() as session:
            link = await session.get(VectorStoreFileRow, (store_id, file_id))
        if link is None:
            raise NotFound(f"No file found with id '{file_id}' in vector store '{store_id}'.", param="file_id")
        return file_object(link)

    async def files(
        self, project_id: str | None, store_id: str, order: str, status: str | None = None, batch_id: str | None = None
    ) -> list[VectorStoreFile]:
        await self.store_row(project_id, store_id)
        query = select(VectorStoreFileRow).where(VectorStoreFileRow.vector_store_id == store_id)
        if status is not None:
            query = query.where(VectorStoreFileRow.status == status)
        if batch_id is not None:
            query = query.where(VectorStoreFileRow.batch_id == batch_id)
        query = ordered(query, order, VectorStoreFileRow.created_at, VectorStoreFileRow.file_id)
        async with self._db.sessions() as session:
            return [file_object(r) for r in await session.scalars(query)]

    async def update_file(
        self, project_id: str | None, store_id: str, file_id: str, attributes: Attributes | None
    ) -> VectorStoreFile:
        await self.file(project_id, store_id, file_id)
        async with self._db.sessions() as session, session.begin():
            await session.execute(
                update(VectorStoreFileRow)
                .where(VectorStoreFileRow.vector_store_id == store_id, VectorStoreFileRow.file_id == file_id)
                .values(attributes=json.dumps(attributes or {}))
            )
        return await self.file(project_id, store_id, file_id)

    async def remove_file(self, project_id: str | None, store_id: str, file_id: str) -> None:
        """Detach a file: its chunks and vectors are deleted (the file itself stays)."""
        await self.file(project_id, store_id, file_id)
        async with self._db.sessions() as session, session.begin():
            await _detach(session, store_id, file_id)

    async def forget_file(self, project_id: str | None, file_id: str) -> None:
        """A file is being deleted: take it out of every vector store of its project."""
        async with self._db.sessions() as session, session.begin():
            stores = (await session.scalars(
                select(VectorStoreFileRow.vector_store_id).join(
                    VectorStoreRow, VectorStoreRow.id == VectorStoreFileRow.vector_store_id)
                .where(VectorStoreFileRow.file_id == file_id, in_project(VectorStoreRow.project_id, project_id))
            )).all()  # fmt: skip
            for store_id in stores:
                await _detach(session, store_id, file_id)

    async def file_content(self, project_id: str | None, store_id: str, file_id: str) -> list[TextContent]:
        await self.file(project_id, store_id, file_id)
        async with self._db.sessions() as session:
            texts = await session.scalars(
                select(ChunkRow.text).where(ChunkRow.vector_store_id == store_id, ChunkRow.file_id == file_id)
                .order_by(ChunkRow.seq)
            )  # fmt: skip
            return [TextContent(text=t) for t in texts]

    # ---- batches ------------------------------------------------------------------------

    async def batch(self, project_id: str | None, store_id: str, batch_id: str) -> VectorStoreFileBatch:
        await self.store_row(project_id, store_id)
        async with self._db.sessions() as session:
            row = await session.get(FileBatchRow, batch_id)
            counts = dict((await session.execute(
                select(VectorStoreFileRow.status, func.count()).where(VectorStoreFileRow.batch_id == batch_id)
                .group_by(VectorStoreFileRow.status))).all())  # fmt: skip
        if row is None or row.vector_store_id != store_id:
            raise NotFound(f"No file batch found with id '{batch_id}'.", param="batch_id")
        if row.cancelled:
            status = "cancelled"
        elif counts.get("in_progress"):
            status = "in_progress"
        else:
            status = "failed" if counts.get("failed") and not counts.get("completed") else "completed"
        return VectorStoreFileBatch(id=row.id, created_at=row.created_at, vector_store_id=store_id,
                                    status=status, file_counts=file_counts(counts))  # type: ignore[arg-type]  # fmt: skip

    async def cancel_batch(self, project_id: str | None, store_id: str, batch_id: str) -> VectorStoreFileBatch:
        await self.batch(project_id, store_id, batch_id)
        async with self._db.sessions() as session, session.begin():
            await session.execute(update(FileBatchRow).where(FileBatchRow.id == batch_id).values(cancelled=True))
            await session.execute(
                update(VectorStoreFileRow)
                .where(VectorStoreFileRow.batch_id == batch_id, VectorStoreFileRow.status == "in_progress")
                .values(status="cancelled")
            )
        return await self.batch(project_id, store_id, batch_id)

    # ---- search -------------------------------------------------------------------------

    async def search(self, project_id: str | None, store_id: str, body: VectorStoreSearch) -> SearchResultsPage:
        row = await self.store_row(project_id, store_id)
        queries = [body.query] if isinstance(body.query, str) else list(body.query)
        if not queries or not all(q.strip() for q in queries):
            raise InvalidRequest("query is a non-empty string or a list of them.", param="query")
        ranking = body.ranking_options
        hits = await self.search_index.chunks(
            row, queries, body.max_num_results, body.filters, ranking.score_threshold if ranking else 0.0,
            hybrid=ranking is None or ranking.ranker != "none",
        )  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            await session.execute(update(VectorStoreRow).where(VectorStoreRow.id == row.id)
                                  .values(last_active_at=int(time.time())))  # fmt: skip
        return SearchResultsPage(search_query=queries, data=hits)


def _link(
    store_id: str, f: StoredFile, strategy: tuple[int, int], attributes: dict[str, Any], batch_id: str | None, now: int
) -> VectorStoreFileRow:
    return VectorStoreFileRow(vector_store_id=store_id, file_id=f.id, batch_id=batch_id, status="in_progress",
                              last_error=None, usage_bytes=0, created_at=now, chunk_tokens=strategy[0],
                              overlap_tokens=strategy[1], attributes=json.dumps(attributes))  # fmt: skip


async def _detach(session: Any, store_id: str, file_id: str) -> bool:
    gone = await session.execute(
        delete(VectorStoreFileRow).where(VectorStoreFileRow.vector_store_id == store_id,
                                         VectorStoreFileRow.file_id == file_id)
    )  # fmt: skip
    chunks = await session.execute(
        delete(ChunkRow).where(ChunkRow.vector_store_id == store_id, ChunkRow.file_id == file_id)
    )
    if chunks.rowcount:
        await bump_version(session, store_id)
    return bool(gone.rowcount)
