"""Vector-store ingestion, a job on the shared queue (storage/jobs.py) like assistant runs.

Attaching a file records it `in_progress` and enqueues `ingest_file`. Any process's worker reads
the file, extracts its text, chunks it in the embedding model's tokens, embeds the chunks and, in
one transaction, stores them and marks the file `completed` — guarded by `status =
'in_progress'`, so a file cancelled or detached meanwhile, or finished by another worker, is not
written twice. A job whose process died is swept back into the queue by saq and run again; files
still `in_progress` when a process starts are enqueued again too (a job lost between the attach
and its enqueue), at worst reading a file twice, never writing it twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import numpy as np
from saq.job import Job
from sqlalchemy import insert, select, update

from ...errors import NotFound
from ...ids import new_id
from ...storage.db import Database
from ...storage.jobs import Jobs, heartbeating
from ...storage.tables import ChunkRow, VectorStoreFileRow, VectorStoreRow
from ..inference.registry import ModelRegistry
from .chunking import TooManyTokens, chunk_text
from .extract import ExtractionError, extract_text
from .files import FileStore

__all__ = ["Ingestion", "bump_version"]

log = logging.getLogger(__name__)

_EMBED_BATCH = 64
_INSERT_BATCH = 500


async def bump_version(session: Any, store_id: str) -> None:
    """The store's chunks changed: every process's search index syncs at its next search."""
    await session.execute(
        update(VectorStoreRow).where(VectorStoreRow.id == store_id).values(version=VectorStoreRow.version + 1)
    )


class Ingestion:
    def __init__(self, db: Database, files: FileStore, registry: ModelRegistry, jobs: Jobs) -> None:
        self._db, self._files, self._registry, self._jobs = db, files, registry, jobs
        jobs.register("ingest_file", self._job)

    async def start(self) -> None:
        """Enqueue what is still `in_progress` (its job may have been lost with a process)."""
        async with self._db.sessions() as session:
            pending = (await session.execute(
                select(VectorStoreFileRow.vector_store_id, VectorStoreFileRow.file_id)
                .where(VectorStoreFileRow.status == "in_progress").order_by(VectorStoreFileRow.created_at)
            )).all()  # fmt: skip
        for store_id, file_id in pending:
            await self.enqueue(store_id, file_id, key=f"ingest:{store_id}:{file_id}:resume")

    async def enqueue(self, store_id: str, file_id: str, key: str | None = None) -> None:
        await self._jobs.enqueue(
            "ingest_file", key=key or f"ingest:{store_id}:{file_id}:{new_id('')}", store_id=store_id,
            file_id=file_id, timeout=0, heartbeat=self._jobs.heartbeat_s, retries=3, ttl=600,
        )  # fmt: skip

    async def _job(self, ctx: dict[str, Any], *, store_id: str, file_id: str) -> None:
        """The saq job. Failures are recorded on the file, not raised: the job is done either way."""
        job: Job = ctx["job"]
        try:
            await heartbeating(job, self._jobs.heartbeat_s / 3, self.ingest(store_id, file_id))
        except Exception as exc:
            log.exception("ingesting %s into %s failed", file_id, store_id)
            await self._fail(store_id, file_id, "server_error", f"Ingestion failed: {exc}")

    async def ingest(self, store_id: str, file_id: str) -> None:
        await self._registry.ready.wait()  # at start, the embedding model may still be loading
        async with self._db.sessions() as session:
            link = await session.get(VectorStoreFileRow, (store_id, file_id))
            store = await session.get(VectorStoreRow, store_id)
        if link is None or store is None or link.status != "in_progress":
            return
        try:
            stored = await self._files.get(store.project_id, file_id)
        except NotFound:
            await self._fail(store_id, file_id, "invalid_file", "The file was deleted.")
            return
        try:
            text = await asyncio.to_thread(extract_text, stored.filename, await self._files.read(stored))
        except ExtractionError as exc:
            await self._fail(store_id, file_id, "invalid_file", str(exc))
            return
        _, engine = self._registry.embedding(store.model)
        try:
            chunks = await asyncio.to_thread(chunk_text, text, engine.tokenize, link.chunk_tokens, link.overlap_tokens)
        except TooManyTokens as exc:
            await self._fail(store_id, file_id, "invalid_file", str(exc))
            return
        vectors: list[np.ndarray] = []
        for start in range(0, len(chunks), _EMBED_BATCH):
            batch = await asyncio.to_thread(engine.tokenize, [c.text for c in chunks[start : start + _EMBED_BATCH]])
            vectors.append(await engine.embed([ids[: engine.max_tokens] for ids in batch]))
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, engine.dimensions), dtype=np.float32)
        rows = [
            {"vector_store_id": store_id, "file_id": file_id, "seq": i, "text": c.text, "tokens": c.tokens,
             "vector": np.asarray(matrix[i], dtype=np.float32).tobytes()}
            for i, c in enumerate(chunks)
        ]  # fmt: skip
        usage = sum(len(c.text.encode("utf-8")) for c in chunks)
        async with self._db.sessions() as session, session.begin():
            claimed = await session.execute(
                update(VectorStoreFileRow).where(*_in_progress(store_id, file_id)).values(status="completed",
                                                                                         usage_bytes=usage)
            )  # fmt: skip
            if not claimed.rowcount:  # type: ignore[attr-defined]
                return  # cancelled, detached, or finished elsewhere meanwhile: write nothing
            for start in range(0, len(rows), _INSERT_BATCH):
                await session.execute(insert(ChunkRow), rows[start : start + _INSERT_BATCH])
            await bump_version(session, store_id)

    async def _fail(self, store_id: str, file_id: str, code: str, message: str) -> None:
        error = json.dumps({"code": code, "message": message})
        async with self._db.sessions() as session, session.begin():
            await session.execute(
                update(VectorStoreFileRow).where(*_in_progress(store_id, file_id)).values(status="failed",
                                                                                         last_error=error)
            )  # fmt: skip


def _in_progress(store_id: str, file_id: str) -> tuple[Any, ...]:
    c = VectorStoreFileRow
    return c.vector_store_id == store_id, c.file_id == file_id, c.status == "in_progress"
