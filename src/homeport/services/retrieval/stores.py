"""Vector stores: files attached, read, chunked, embedded and indexed in the background; searched.

Ingestion: attaching a file records it `in_progress`; a worker task reads it, extracts its text,
chunks it in the embedding model's tokens, embeds the chunks and, in one transaction, stores
them and marks the file `completed` — guarded by `status = 'in_progress'`, so a file cancelled
or detached meanwhile, or finished by another replica, is not written twice. Files still
`in_progress` when a process starts (a restart mid-ingestion) are queued again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select, update

from ...errors import InvalidRequest, NotFound
from ...ids import sortable_id
from ...storage.db import Database
from ...storage.tables import ChunkRow, FileBatchRow, VectorStoreFileRow, VectorStoreRow
from ..inference.registry import ModelRegistry
from .chunking import AUTO, check_static, chunk_text
from .extract import ExtractionError, check_supported, extract_text
from .files import FileStore, StoredFile, in_project
from .keyword import keyword_hits
from .vector_index import Hit, VectorIndexes

__all__ = ["VectorStoreService", "check_attributes", "check_metadata", "matches"]

log = logging.getLogger("homeport")

_EMBED_BATCH = 64
VECTOR_WEIGHT, KEYWORD_WEIGHT = 0.7, 0.3
_OPS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"}


# ---------------------------------------------------------------- validation


def check_metadata(metadata: Any, param: str = "metadata") -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise InvalidRequest("metadata must be an object of at most 16 pairs.", param=param)
    for k, v in metadata.items():
        if len(k) > 64 or not isinstance(v, str) or len(v) > 512:
            raise InvalidRequest("metadata keys are at most 64 characters; values are strings of at most 512.",
                                 param=f"{param}.{k}")  # fmt: skip
    return metadata


def check_attributes(attributes: Any, param: str = "attributes") -> dict[str, Any]:
    if attributes is None:
        return {}
    if not isinstance(attributes, dict) or len(attributes) > 16:
        raise InvalidRequest("attributes must be an object of at most 16 pairs.", param=param)
    for k, v in attributes.items():
        ok = isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= 512)
        if len(k) > 64 or not ok:
            raise InvalidRequest("attribute keys are at most 64 characters; values are strings (at most 512), "
                                 "numbers or booleans.", param=f"{param}.{k}")  # fmt: skip
    return attributes


def check_filter(f: Any, param: str = "filters") -> None:
    if not isinstance(f, dict) or "type" not in f:
        raise InvalidRequest("A filter is an object with a 'type'.", param=param)
    if f["type"] in ("and", "or"):
        if not isinstance(f.get("filters"), list) or not f["filters"]:
            raise InvalidRequest("A compound filter needs a non-empty 'filters' list.", param=f"{param}.filters")
        for i, sub in enumerate(f["filters"]):
            check_filter(sub, f"{param}.filters.[{i}]")
        return
    if f["type"] not in _OPS:
        raise InvalidRequest(f"Unknown filter type '{f['type']}'.", param=f"{param}.type")
    if not isinstance(f.get("key"), str) or "value" not in f:
        raise InvalidRequest("A comparison filter needs 'key' and 'value'.", param=param)
    if f["type"] in ("in", "nin") and not isinstance(f["value"], list):
        raise InvalidRequest(f"'{f['type']}' compares with a list.", param=f"{param}.value")


def matches(f: dict[str, Any], attributes: dict[str, Any]) -> bool:
    """OpenAI's comparison and compound filters over a file's attributes."""
    kind = f["type"]
    if kind == "and":
        return all(matches(sub, attributes) for sub in f["filters"])
    if kind == "or":
        return any(matches(sub, attributes) for sub in f["filters"])
    if f["key"] not in attributes:
        return kind in ("ne", "nin")
    have, want = attributes[f["key"]], f["value"]
    try:
        return {
            "eq": lambda: have == want, "ne": lambda: have != want, "gt": lambda: have > want,
            "gte": lambda: have >= want, "lt": lambda: have < want, "lte": lambda: have <= want,
            "in": lambda: have in want, "nin": lambda: have not in want,
        }[kind]()  # fmt: skip
    except TypeError:  # comparing a string with a number: not a match
        return False


def chunking(strategy: Any, param: str = "chunking_strategy") -> tuple[int, int]:
    if strategy is None or strategy == {"type": "auto"}:
        return AUTO
    if not isinstance(strategy, dict) or strategy.get("type") not in ("auto", "static"):
        raise InvalidRequest("chunking_strategy is {'type': 'auto'} or {'type': 'static', 'static': {...}}.",
                             param=param)  # fmt: skip
    static = strategy.get("static")
    if strategy["type"] == "auto" or not isinstance(static, dict):
        raise InvalidRequest("A static chunking strategy needs its 'static' settings.", param=f"{param}.static")
    size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
    if not isinstance(size, int) or not isinstance(overlap, int):
        raise InvalidRequest("max_chunk_size_tokens and chunk_overlap_tokens are integers.", param=f"{param}.static")
    if (problem := check_static(size, overlap)) is not None:
        raise InvalidRequest(problem, param=f"{param}.static")
    return size, overlap


# ---------------------------------------------------------------- wire shapes


def _store_wire(row: VectorStoreRow, counts: dict[str, int], usage_bytes: int) -> dict[str, Any]:
    expires_at = None if row.expires_after_days is None else row.last_active_at + row.expires_after_days * 86400
    expired = expires_at is not None and expires_at <= time.time()
    status = "expired" if expired else ("in_progress" if counts.get("in_progress") else "completed")
    out: dict[str, Any] = {
        "id": row.id, "object": "vector_store", "created_at": row.created_at, "name": row.name,
        "usage_bytes": usage_bytes, "file_counts": _counts(counts), "status": status,
        "expires_at": expires_at, "last_active_at": row.last_active_at, "metadata": json.loads(row.metadata_json),
    }  # fmt: skip
    if row.expires_after_days is not None:
        out["expires_after"] = {"anchor": "last_active_at", "days": row.expires_after_days}
    return out


def _counts(counts: dict[str, int]) -> dict[str, int]:
    states = ("in_progress", "completed", "failed", "cancelled")
    return {s: counts.get(s, 0) for s in states} | {"total": sum(counts.get(s, 0) for s in states)}


def _file_wire(row: VectorStoreFileRow) -> dict[str, Any]:
    return {
        "id": row.file_id, "object": "vector_store.file", "usage_bytes": row.usage_bytes,
        "created_at": row.created_at, "vector_store_id": row.vector_store_id, "status": row.status,
        "last_error": json.loads(row.last_error) if row.last_error else None,
        "chunking_strategy": {"type": "static", "static": {"max_chunk_size_tokens": row.chunk_tokens,
                                                           "chunk_overlap_tokens": row.overlap_tokens}},
        "attributes": json.loads(row.attributes),
    }  # fmt: skip


@dataclass(frozen=True)
class _Job:
    store_id: str
    file_id: str


class VectorStoreService:
    def __init__(
        self, db: Database, files: FileStore, registry: ModelRegistry, indexes: VectorIndexes, model: str
    ) -> None:
        self._db, self._files, self._registry, self._indexes, self._model = db, files, registry, indexes, model
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Queue what a previous process left `in_progress`, then work through the queue."""
        async with self._db.sessions() as session:
            pending = (await session.execute(
                select(VectorStoreFileRow.vector_store_id, VectorStoreFileRow.file_id)
                .where(VectorStoreFileRow.status == "in_progress").order_by(VectorStoreFileRow.created_at)
            )).all()  # fmt: skip
        for store_id, file_id in pending:
            self._enqueue(store_id, file_id)
        self._worker = asyncio.create_task(self._work())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    def _enqueue(self, store_id: str, file_id: str) -> None:
        self.idle.clear()
        self._queue.put_nowait(_Job(store_id, file_id))

    async def _work(self) -> None:
        await self._registry.ready.wait()  # at start, the embedding model may still be loading
        while True:
            job = await self._queue.get()
            try:
                await self._ingest(job)
            except Exception as exc:  # recorded on the file; the worker goes on
                log.exception("ingesting %s into %s failed", job.file_id, job.store_id)
                await self._fail(job, "server_error", f"Ingestion failed: {exc}")
            finally:
                if self._queue.empty():
                    self.idle.set()

    # ---- ingestion ----------------------------------------------------------------------

    async def _ingest(self, job: _Job) -> None:
        async with self._db.sessions() as session:
            link = await session.get(VectorStoreFileRow, (job.store_id, job.file_id))
            store = await session.get(VectorStoreRow, job.store_id)
        if link is None or store is None or link.status != "in_progress":
            return
        try:
            stored = await self._files.get(store.project_id, job.file_id)
        except NotFound:
            await self._fail(job, "invalid_file", "The file was deleted.")
            return
        try:
            text = await asyncio.to_thread(extract_text, stored.filename, await self._files.read(stored))
        except ExtractionError as exc:
            await self._fail(job, "invalid_file", str(exc))
            return
        _, engine = self._registry.embedding(store.model)
        chunks = await asyncio.to_thread(chunk_text, text, engine.tokenize, link.chunk_tokens, link.overlap_tokens)
        vectors: list[np.ndarray] = []
        for start in range(0, len(chunks), _EMBED_BATCH):
            batch = engine.tokenize([c.text for c in chunks[start : start + _EMBED_BATCH]])
            vectors.append(await engine.embed([ids[: engine.max_tokens] for ids in batch]))
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, engine.dimensions), dtype=np.float32)
        rows = [
            {"vector_store_id": job.store_id, "file_id": job.file_id, "seq": i, "text": c.text, "tokens": c.tokens,
             "vector": np.asarray(matrix[i], dtype=np.float32).tobytes()}
            for i, c in enumerate(chunks)
        ]  # fmt: skip
        usage = sum(len(c.text.encode("utf-8")) for c in chunks)
        async with self._db.sessions() as session, session.begin():
            claimed = await session.execute(
                update(VectorStoreFileRow)
                .where(VectorStoreFileRow.vector_store_id == job.store_id, VectorStoreFileRow.file_id == job.file_id,
                       VectorStoreFileRow.status == "in_progress")
                .values(status="completed", usage_bytes=usage)
            )  # fmt: skip
            if not claimed.rowcount:  # type: ignore[attr-defined]
                return  # cancelled, detached, or finished elsewhere meanwhile: write nothing
            for start in range(0, len(rows), 500):
                await session.execute(insert(ChunkRow), rows[start : start + 500])
            await self._bump(session, job.store_id)

    async def _fail(self, job: _Job, code: str, message: str) -> None:
        async with self._db.sessions() as session, session.begin():
            await session.execute(
                update(VectorStoreFileRow)
                .where(VectorStoreFileRow.vector_store_id == job.store_id, VectorStoreFileRow.file_id == job.file_id,
                       VectorStoreFileRow.status == "in_progress")
                .values(status="failed", last_error=json.dumps({"code": code, "message": message}))
            )  # fmt: skip

    @staticmethod
    async def _bump(session: Any, store_id: str) -> None:
        await session.execute(
            update(VectorStoreRow).where(VectorStoreRow.id == store_id).values(version=VectorStoreRow.version + 1)
        )

    # ---- stores -------------------------------------------------------------------------

    async def _row(self, project_id: str | None, store_id: str) -> VectorStoreRow:
        async with self._db.sessions() as session:
            row = await session.scalar(
                select(VectorStoreRow).where(
                    VectorStoreRow.id == store_id, in_project(VectorStoreRow.project_id, project_id)
                )  # fmt: skip
            )
        if row is None:
            raise NotFound(f"No vector store found with id '{store_id}'.", param="vector_store_id")
        return row

    async def store_row(self, project_id: str | None, store_id: str) -> VectorStoreRow:
        """The store's row (for search_chunks); not found outside its project."""
        return await self._row(project_id, store_id)

    async def _wire(self, row: VectorStoreRow) -> dict[str, Any]:
        async with self._db.sessions() as session:
            counts = dict((await session.execute(
                select(VectorStoreFileRow.status, func.count()).where(VectorStoreFileRow.vector_store_id == row.id)
                .group_by(VectorStoreFileRow.status))).all())  # fmt: skip
            usage = await session.scalar(
                select(func.coalesce(func.sum(VectorStoreFileRow.usage_bytes), 0))
                .where(VectorStoreFileRow.vector_store_id == row.id)
            )  # fmt: skip
        return _store_wire(row, counts, int(usage or 0))

    async def create(self, project_id: str | None, body: dict[str, Any]) -> dict[str, Any]:
        metadata = check_metadata(body.get("metadata"))
        days = self._expiry_days(body.get("expires_after"))
        strategy = chunking(body.get("chunking_strategy"))
        file_ids = body.get("file_ids") or []
        files = [await self._attachable(project_id, f, f"file_ids.[{i}]") for i, f in enumerate(file_ids)]
        self._registry.embedding(self._model)  # the embedding model must be loaded
        now = int(time.time())
        row = VectorStoreRow(id=sortable_id("vs_"), project_id=project_id, name=body.get("name") or "",
                             created_at=now, last_active_at=now, metadata_json=json.dumps(metadata),
                             expires_after_days=days, model=self._model, version=0)  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            session.add(row)
            for f in files:
                session.add(self._link(row.id, f, strategy, {}, None, now))
        for f in files:
            self._enqueue(row.id, f.id)
        return await self._wire(row)

    @staticmethod
    def _expiry_days(expires_after: Any) -> int | None:
        if expires_after is None:
            return None
        days = expires_after.get("days") if isinstance(expires_after, dict) else None
        anchor = expires_after.get("anchor") if isinstance(expires_after, dict) else None
        if anchor != "last_active_at" or not isinstance(days, int) or not 1 <= days <= 365:
            raise InvalidRequest("expires_after is {'anchor': 'last_active_at', 'days': 1..365}.",
                                 param="expires_after")  # fmt: skip
        return int(expires_after["days"])

    async def _attachable(self, project_id: str | None, file_id: Any, param: str) -> StoredFile:
        if not isinstance(file_id, str):
            raise InvalidRequest("A file id is a string.", param=param)
        stored = await self._files.get(project_id, file_id, param=param)
        check_supported(stored.filename, param=param)
        return stored

    @staticmethod
    def _link(
        store_id: str, f: StoredFile, strategy: tuple[int, int], attributes: dict[str, Any], batch_id: str | None,
        now: int,
    ) -> VectorStoreFileRow:  # fmt: skip
        return VectorStoreFileRow(vector_store_id=store_id, file_id=f.id, batch_id=batch_id, status="in_progress",
                                  last_error=None, usage_bytes=0, created_at=now, chunk_tokens=strategy[0],
                                  overlap_tokens=strategy[1], attributes=json.dumps(attributes))  # fmt: skip

    async def list_stores(self, project_id: str | None, order: str) -> list[dict[str, Any]]:
        key = (VectorStoreRow.created_at, VectorStoreRow.id)
        query = select(VectorStoreRow).where(in_project(VectorStoreRow.project_id, project_id))
        query = query.order_by(*(k.desc() for k in key) if order == "desc" else key)
        async with self._db.sessions() as session:
            rows = list(await session.scalars(query))
        return [await self._wire(r) for r in rows]

    async def retrieve(self, project_id: str | None, store_id: str) -> dict[str, Any]:
        return await self._wire(await self._row(project_id, store_id))

    async def update(self, project_id: str | None, store_id: str, body: dict[str, Any]) -> dict[str, Any]:
        row = await self._row(project_id, store_id)
        values: dict[str, Any] = {}
        if "name" in body and body["name"] is not None:
            values["name"] = str(body["name"])
        if "metadata" in body:
            values["metadata_json"] = json.dumps(check_metadata(body["metadata"]))
        if "expires_after" in body:
            values["expires_after_days"] = self._expiry_days(body["expires_after"])
        if values:
            async with self._db.sessions() as session, session.begin():
                await session.execute(update(VectorStoreRow).where(VectorStoreRow.id == row.id).values(**values))
        return await self.retrieve(project_id, store_id)

    async def delete(self, project_id: str | None, store_id: str) -> None:
        row = await self._row(project_id, store_id)
        async with self._db.sessions() as session, session.begin():
            for table in (ChunkRow, VectorStoreFileRow, FileBatchRow):
                await session.execute(delete(table).where(table.vector_store_id == row.id))
            await session.execute(delete(VectorStoreRow).where(VectorStoreRow.id == row.id))
        self._indexes.drop(row.id)

    # ---- files in a store ---------------------------------------------------------------

    async def attach(
        self, project_id: str | None, store_id: str, file_ids: list[str], strategy: Any, attributes: Any,
        batch_id: str | None = None, per_file: dict[str, tuple[Any, Any]] | None = None,
    ) -> list[VectorStoreFileRow]:  # fmt: skip
        """Attach files (each may carry its own strategy and attributes in `per_file`)."""
        row = await self._row(project_id, store_id)
        default = (chunking(strategy), check_attributes(attributes))
        links = []
        now = int(time.time())
        for i, file_id in enumerate(file_ids):
            stored = await self._attachable(project_id, file_id, f"file_ids.[{i}]" if batch_id else "file_id")
            own = per_file.get(file_id) if per_file else None
            settings = (chunking(own[0]), check_attributes(own[1])) if own else default
            links.append(self._link(row.id, stored, settings[0], settings[1], batch_id, now))
        async with self._db.sessions() as session, session.begin():
            if batch_id is not None:
                session.add(FileBatchRow(id=batch_id, vector_store_id=row.id, created_at=now, cancelled=False))
            for link in links:
                # Attaching again re-ingests: the old chunks go first.
                await self._detach(session, row.id, link.file_id)
                session.add(link)
        for link in links:
            self._enqueue(row.id, link.file_id)
        return links

    async def _detach(self, session: Any, store_id: str, file_id: str) -> bool:
        gone = await session.execute(
            delete(VectorStoreFileRow).where(
                VectorStoreFileRow.vector_store_id == store_id, VectorStoreFileRow.file_id == file_id
            )  # fmt: skip
        )
        chunks = await session.execute(
            delete(ChunkRow).where(ChunkRow.vector_store_id == store_id, ChunkRow.file_id == file_id)
        )
        if chunks.rowcount:
            await self._bump(session, store_id)
        return bool(gone.rowcount)

    async def file(self, project_id: str | None, store_id: str, file_id: str) -> dict[str, Any]:
        await self._row(project_id, store_id)
        async with self._db.sessions() as session:
            link = await session.get(VectorStoreFileRow, (store_id, file_id))
        if link is None:
            raise NotFound(f"No file found with id '{file_id}' in vector store '{store_id}'.", param="file_id")
        return _file_wire(link)

    async def files(
        self, project_id: str | None, store_id: str, order: str, status: str | None = None, batch_id: str | None = None
    ) -> list[dict[str, Any]]:
        await self._row(project_id, store_id)
        query = select(VectorStoreFileRow).where(VectorStoreFileRow.vector_store_id == store_id)
        if status is not None:
            query = query.where(VectorStoreFileRow.status == status)
        if batch_id is not None:
            query = query.where(VectorStoreFileRow.batch_id == batch_id)
        key = (VectorStoreFileRow.created_at, VectorStoreFileRow.file_id)
        query = query.order_by(*(k.desc() for k in key) if order == "desc" else key)
        async with self._db.sessions() as session:
            return [_file_wire(r) for r in await session.scalars(query)]

    async def update_file(self, project_id: str | None, store_id: str, file_id: str, attributes: Any) -> dict:
        await self.file(project_id, store_id, file_id)
        checked = check_attributes(attributes)
        async with self._db.sessions() as session, session.begin():
            await session.execute(
                update(VectorStoreFileRow)
                .where(VectorStoreFileRow.vector_store_id == store_id, VectorStoreFileRow.file_id == file_id)
                .values(attributes=json.dumps(checked))
            )
        return await self.file(project_id, store_id, file_id)

    async def remove_file(self, project_id: str | None, store_id: str, file_id: str) -> None:
        """Detach a file: its chunks and vectors are deleted (the file itself stays)."""
        await self.file(project_id, store_id, file_id)
        async with self._db.sessions() as session, session.begin():
            await self._detach(session, store_id, file_id)

    async def forget_file(self, project_id: str | None, file_id: str) -> None:
        """A file is being deleted: take it out of every vector store of its project."""
        async with self._db.sessions() as session, session.begin():
            stores = (await session.scalars(
                select(VectorStoreFileRow.vector_store_id).join(
                    VectorStoreRow, VectorStoreRow.id == VectorStoreFileRow.vector_store_id)
                .where(VectorStoreFileRow.file_id == file_id, in_project(VectorStoreRow.project_id, project_id))
            )).all()  # fmt: skip
            for store_id in stores:
                await self._detach(session, store_id, file_id)

    async def file_content(self, project_id: str | None, store_id: str, file_id: str) -> list[dict[str, str]]:
        await self.file(project_id, store_id, file_id)
        async with self._db.sessions() as session:
            texts = await session.scalars(
                select(ChunkRow.text).where(ChunkRow.vector_store_id == store_id, ChunkRow.file_id == file_id)
                .order_by(ChunkRow.seq)
            )  # fmt: skip
            return [{"type": "text", "text": t} for t in texts]

    # ---- batches ------------------------------------------------------------------------

    async def batch(self, project_id: str | None, store_id: str, batch_id: str) -> dict[str, Any]:
        await self._row(project_id, store_id)
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
        return {"id": row.id, "object": "vector_store.files_batch", "created_at": row.created_at,
                "vector_store_id": store_id, "status": status, "file_counts": _counts(counts)}  # fmt: skip

    async def cancel_batch(self, project_id: str | None, store_id: str, batch_id: str) -> dict[str, Any]:
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

    async def search(self, project_id: str | None, store_id: str, body: dict[str, Any]) -> dict[str, Any]:
        row = await self._row(project_id, store_id)
        queries = _queries(body.get("query"))
        k = body.get("max_num_results", 10)
        if not isinstance(k, int) or not 1 <= k <= 50:
            raise InvalidRequest("max_num_results must be between 1 and 50.", param="max_num_results")
        threshold, hybrid = _ranking(body.get("ranking_options"))
        filters = body.get("filters")
        if filters is not None:
            check_filter(filters)
        hits = await self.search_chunks(row, queries, k, filters, threshold, hybrid)
        async with self._db.sessions() as session, session.begin():
            await session.execute(update(VectorStoreRow).where(VectorStoreRow.id == row.id)
                                  .values(last_active_at=int(time.time())))  # fmt: skip
        return {"object": "vector_store.search_results.page", "search_query": queries, "data": hits,
                "has_more": False, "next_page": None}  # fmt: skip

    async def search_chunks(
        self, row: VectorStoreRow, queries: list[str], k: int, filters: dict | None, threshold: float,
        hybrid: bool = True,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """The k best chunks for any of the queries (file_search uses this too).

        Hybrid ranking (the default; ranker `none` turns it off): the vector search's candidates and
        the keyword search's (services/keyword.py) are scored together, VECTOR_WEIGHT × cosine +
        KEYWORD_WEIGHT × keyword score / the best keyword score — in [0, 1], so `score_threshold`
        keeps its meaning. Exact words (names, codes, ids) then count, which embeddings blur."""
        async with self._db.sessions() as session:
            links = list(await session.scalars(
                select(VectorStoreFileRow).where(VectorStoreFileRow.vector_store_id == row.id,
                                                 VectorStoreFileRow.status == "completed")))  # fmt: skip
        attributes = {link.file_id: json.loads(link.attributes) for link in links}
        allowed = None if filters is None else {f for f, a in attributes.items() if matches(filters, a)}
        if not attributes or allowed == set():
            return []
        _, engine = self._registry.embedding(row.model)
        vectors = await engine.embed([ids[: engine.max_tokens] for ids in engine.tokenize(queries)])
        best: dict[int, Hit] = {}
        wide = max(4 * k, 20)
        for query, vector in zip(queries, vectors, strict=True):
            q = np.asarray(vector, dtype=np.float32)
            candidates = {h.chunk_id: h for h in await self._indexes.search(row.id, q, wide if hybrid else k, allowed)}
            keyword: dict[int, float] = {}
            if hybrid:
                for chunk_id, file_id, score in await keyword_hits(self._db, row.id, query, wide):
                    if file_id in attributes and (allowed is None or file_id in allowed):
                        keyword[chunk_id] = score
                missing = [c for c in keyword if c not in candidates]
                candidates |= {h.chunk_id: h for h in await self._indexes.similarities(row.id, q, missing)}
            top = max(keyword.values(), default=0.0)
            for hit in candidates.values():
                score = hit.score
                if hybrid:
                    score = VECTOR_WEIGHT * hit.score + KEYWORD_WEIGHT * (
                        keyword.get(hit.chunk_id, 0.0) / top if top else 0.0
                    )
                if hit.file_id in attributes and (hit.chunk_id not in best or best[hit.chunk_id].score < score):
                    best[hit.chunk_id] = Hit(hit.chunk_id, hit.file_id, score)
        ranked = sorted((h for h in best.values() if h.score >= threshold), key=lambda h: -h.score)[:k]
        if not ranked:
            return []
        wanted = select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id.in_([h.chunk_id for h in ranked]))
        async with self._db.sessions() as session:
            texts = dict((await session.execute(wanted)).all())
        names = {f.id: f.filename for f in await self._stored(row.project_id, {h.file_id for h in ranked})}
        return [
            {"file_id": h.file_id, "filename": names.get(h.file_id, ""), "score": round(h.score, 6),
             "attributes": attributes[h.file_id], "content": [{"type": "text", "text": texts[h.chunk_id]}]}
            for h in ranked if h.chunk_id in texts
        ]  # fmt: skip

    async def _stored(self, project_id: str | None, file_ids: Iterable[str]) -> list[StoredFile]:
        out = []
        for file_id in file_ids:
            try:
                out.append(await self._files.get(project_id, file_id))
            except NotFound:
                continue
        return out


def _queries(query: Any) -> list[str]:
    if isinstance(query, str) and query.strip():
        return [query]
    if isinstance(query, list) and query and all(isinstance(q, str) and q.strip() for q in query):
        return list(query)
    raise InvalidRequest("query is a non-empty string or a list of them.", param="query")


def _ranking(options: Any) -> tuple[float, bool]:
    """(score_threshold, hybrid) from ranking_options."""
    if options is None:
        return 0.0, True
    if not isinstance(options, dict) or set(options) - {"ranker", "score_threshold"}:
        raise InvalidRequest("ranking_options takes 'ranker' and 'score_threshold'.", param="ranking_options")
    if options.get("ranker", "auto") not in ("auto", "default-2024-11-15", "none"):
        raise InvalidRequest("ranker is 'auto', 'default-2024-11-15' or 'none'.", param="ranking_options.ranker")
    threshold = options.get("score_threshold", 0.0)
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise InvalidRequest("score_threshold is between 0 and 1.", param="ranking_options.score_threshold")
    return float(threshold), options.get("ranker", "auto") != "none"
