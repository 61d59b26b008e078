"""Vector-store rows → OpenAI's objects, and typed request settings → what the rows keep."""

from __future__ import annotations

import json
import time

from ...errors import InvalidRequest
from ...protocol.vector_stores import (
    ChunkingStrategy,
    ExpiresAfter,
    FileCounts,
    FileError,
    StaticChunking,
    StaticChunkingSettings,
    VectorStore,
    VectorStoreFile,
)
from ...storage.tables import VectorStoreFileRow, VectorStoreRow
from .chunking import AUTO, check_static

__all__ = ["chunking", "file_counts", "file_object", "store_object"]


def chunking(strategy: ChunkingStrategy | None, param: str = "chunking_strategy") -> tuple[int, int]:
    """(max tokens, overlap) of a chunking strategy (None or auto: the default)."""
    if not isinstance(strategy, StaticChunking):
        return AUTO
    size, overlap = strategy.static.max_chunk_size_tokens, strategy.static.chunk_overlap_tokens
    if (problem := check_static(size, overlap)) is not None:
        raise InvalidRequest(problem, param=f"{param}.static")
    return size, overlap


def file_counts(counts: dict[str, int]) -> FileCounts:
    states = ("in_progress", "completed", "failed", "cancelled")
    return FileCounts(**{s: counts.get(s, 0) for s in states}, total=sum(counts.get(s, 0) for s in states))


def store_object(row: VectorStoreRow, counts: dict[str, int], usage_bytes: int) -> VectorStore:
    days = row.expires_after_days
    expires_at = None if days is None else row.last_active_at + days * 86400
    expired = expires_at is not None and expires_at <= time.time()
    return VectorStore(
        id=row.id,
        created_at=row.created_at,
        name=row.name,
        usage_bytes=usage_bytes,
        file_counts=file_counts(counts),
        status="expired" if expired else ("in_progress" if counts.get("in_progress") else "completed"),
        expires_after=None if days is None else ExpiresAfter(anchor="last_active_at", days=days),
        expires_at=expires_at,
        last_active_at=row.last_active_at,
        metadata=json.loads(row.metadata_json),
    )


def file_object(row: VectorStoreFileRow) -> VectorStoreFile:
    settings = StaticChunkingSettings(max_chunk_size_tokens=row.chunk_tokens, chunk_overlap_tokens=row.overlap_tokens)
    return VectorStoreFile(
        id=row.file_id,
        usage_bytes=row.usage_bytes,
        created_at=row.created_at,
        vector_store_id=row.vector_store_id,
        status=row.status,  # type: ignore[arg-type]
        last_error=FileError(**json.loads(row.last_error)) if row.last_error else None,
        chunking_strategy=StaticChunking(type="static", static=settings),
        attributes=json.loads(row.attributes),
    )
