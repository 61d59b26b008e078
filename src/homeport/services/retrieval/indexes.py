"""Which vector index a process searches: pgvector where the database is PostgreSQL with the
extension (one index in the database, shared by every replica), usearch otherwise (the embedded
default: an index per process, synced from the chunks table). Both read the same `chunks` rows,
so switching is a restart, never a migration of data."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np

from ...storage.db import Database
from .pgvector_index import PgVectorIndexes, prepare
from .vector_index import Hit, VectorIndexes

__all__ = ["Indexes"]

log = logging.getLogger(__name__)


class Indexes:
    def __init__(self, db: Database, root: Path, choice: Literal["auto", "usearch", "pgvector"] = "auto") -> None:
        self._db, self._root, self._choice = db, root, choice
        self.backend: VectorIndexes | PgVectorIndexes = VectorIndexes(db, root)

    @property
    def kind(self) -> str:
        return "pgvector" if isinstance(self.backend, PgVectorIndexes) else "usearch"

    async def start(self) -> None:
        if self._choice == "usearch":
            return
        if await prepare(self._db):
            self.backend = PgVectorIndexes(self._db)
        elif self._choice == "pgvector":
            raise RuntimeError("vector_index is pgvector, but the database is not PostgreSQL with the vector extension")
        log.info("vector search: %s", self.kind)

    async def search(
        self, store_id: str, query: np.ndarray, k: int, allowed_files: set[str] | None = None
    ) -> list[Hit]:
        return await self.backend.search(store_id, query, k, allowed_files)

    async def similarities(self, store_id: str, query: np.ndarray, chunk_ids: list[int]) -> list[Hit]:
        return await self.backend.similarities(store_id, query, chunk_ids)

    async def drop(self, store_id: str) -> None:
        await self.backend.drop(store_id)
