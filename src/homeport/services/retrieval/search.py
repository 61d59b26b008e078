"""Searching a vector store: vector candidates from the store's index (indexes.py) and, for
hybrid ranking, keyword candidates from the database's full-text engine (keyword.py), scored
together; OpenAI's attribute filters narrow both to the files they match — chosen by PostgreSQL
itself (filters.py), or over the files' attributes here on SQLite. Only chunks of completed files
exist (ingestion writes them and marks the file in one transaction), so no other check is needed;
the results' attributes are read for the files found."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import select, text

from ...backends.base import prepared
from ...errors import NotFound
from ...protocol.vector_stores import ComparisonFilter, Filter, SearchResult, TextContent
from ...storage.db import Database
from ...storage.tables import ChunkRow, VectorStoreFileRow, VectorStoreRow
from ..inference.registry import ModelRegistry
from .files import FileStore, StoredFile
from .filters import to_sql
from .indexes import Indexes
from .keyword import keyword_hits
from .vector_index import Hit

__all__ = ["KEYWORD_WEIGHT", "VECTOR_WEIGHT", "Search", "matches"]

VECTOR_WEIGHT, KEYWORD_WEIGHT = 0.7, 0.3


def matches(f: Filter, attributes: dict[str, Any]) -> bool:
    """OpenAI's comparison and compound filters over a file's attributes."""
    if not isinstance(f, ComparisonFilter):
        found = (matches(sub, attributes) for sub in f.filters)
        return all(found) if f.type == "and" else any(found)
    if f.key not in attributes:
        return f.type in ("ne", "nin")
    have: Any = attributes[f.key]
    want: Any = f.value
    try:
        return {
            "eq": lambda: have == want, "ne": lambda: have != want, "gt": lambda: have > want,
            "gte": lambda: have >= want, "lt": lambda: have < want, "lte": lambda: have <= want,
            "in": lambda: have in want, "nin": lambda: have not in want,
        }[f.type]()  # fmt: skip
    except TypeError:  # comparing a string with a number: not a match
        return False


class Search:
    def __init__(self, db: Database, files: FileStore, registry: ModelRegistry, indexes: Indexes) -> None:
        self._db, self._files, self._registry, self._indexes = db, files, registry, indexes

    async def chunks(
        self, row: VectorStoreRow, queries: list[str], k: int, filters: Filter | None = None,
        threshold: float = 0.0, hybrid: bool = True,
    ) -> list[SearchResult]:  # fmt: skip
        """The k best chunks for any of the queries (file_search uses this too).

        Hybrid ranking (the default; ranker `none` turns it off): the vector search's candidates and
        the keyword search's are scored together, VECTOR_WEIGHT × cosine + KEYWORD_WEIGHT × keyword
        score / the best keyword score — in [0, 1], so `score_threshold` keeps its meaning. Exact
        words (names, codes, ids) then count, which embeddings blur."""
        allowed = None if filters is None else await self._matching(row.id, filters)
        if allowed == set():
            return []
        _, engine = self._registry.embedding(row.model)
        tokens = await prepared(partial(engine.tokenize, queries), sum(map(len, queries)))
        vectors = await engine.embed([ids[: engine.max_tokens] for ids in tokens])
        best: dict[int, Hit] = {}
        for query, vector in zip(queries, vectors, strict=True):
            q = np.asarray(vector, dtype=np.float32)
            for hit in await self._scored(row.id, query, q, k, allowed, hybrid):
                if hit.chunk_id not in best or best[hit.chunk_id].score < hit.score:
                    best[hit.chunk_id] = hit
        ranked = sorted((h for h in best.values() if h.score >= threshold), key=lambda h: -h.score)[:k]
        return await self._results(row.project_id, row.id, ranked)

    async def _matching(self, store_id: str, f: Filter) -> set[str]:
        """The store's completed files whose attributes pass the filter."""
        done = (VectorStoreFileRow.vector_store_id == store_id, VectorStoreFileRow.status == "completed")
        async with self._db.sessions() as session:
            if self._db.engine.dialect.name == "postgresql":
                clause, params = to_sql(f)
                found = await session.scalars(select(VectorStoreFileRow.file_id).where(*done, text(clause)), params)
                return set(found)
            rows = (await session.execute(select(VectorStoreFileRow.file_id, VectorStoreFileRow.attributes)
                                          .where(*done))).all()  # fmt: skip
        return {file_id for file_id, raw in rows if matches(f, json.loads(raw))}

    async def _scored(
        self, store_id: str, query: str, q: np.ndarray, k: int, allowed: set[str] | None, hybrid: bool
    ) -> list[Hit]:
        wide = max(4 * k, 20)
        candidates = {h.chunk_id: h for h in await self._indexes.search(store_id, q, wide if hybrid else k, allowed)}
        keyword: dict[int, float] = {}
        if hybrid:
            for chunk_id, file_id, score in await keyword_hits(self._db, store_id, query, wide):
                if allowed is None or file_id in allowed:
                    keyword[chunk_id] = score
            missing = [c for c in keyword if c not in candidates]
            candidates |= {h.chunk_id: h for h in await self._indexes.similarities(store_id, q, missing)}
        top = max(keyword.values(), default=0.0)
        scored = []
        for hit in candidates.values():
            score = hit.score
            if hybrid:
                score = VECTOR_WEIGHT * hit.score + KEYWORD_WEIGHT * (
                    keyword.get(hit.chunk_id, 0.0) / top if top else 0.0
                )
            scored.append(Hit(hit.chunk_id, hit.file_id, score))
        return scored

    async def _results(self, project_id: str | None, store_id: str, ranked: list[Hit]) -> list[SearchResult]:
        if not ranked:
            return []
        wanted = select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id.in_([h.chunk_id for h in ranked]))
        links = select(VectorStoreFileRow.file_id, VectorStoreFileRow.attributes).where(
            VectorStoreFileRow.vector_store_id == store_id,
            VectorStoreFileRow.file_id.in_({h.file_id for h in ranked}))  # fmt: skip
        async with self._db.sessions() as session:
            texts = dict((await session.execute(wanted)).all())
            attributes = {file_id: json.loads(raw) for file_id, raw in (await session.execute(links)).all()}
        names = {f.id: f.filename for f in await self._stored(project_id, {h.file_id for h in ranked})}
        return [
            SearchResult(file_id=h.file_id, filename=names.get(h.file_id, ""), score=round(h.score, 6),
                         attributes=attributes[h.file_id], content=[TextContent(text=texts[h.chunk_id])])
            for h in ranked if h.chunk_id in texts and h.file_id in attributes
        ]  # fmt: skip

    async def _stored(self, project_id: str | None, file_ids: Iterable[str]) -> list[StoredFile]:
        out = []
        for file_id in file_ids:
            try:
                out.append(await self._files.get(project_id, file_id))
            except NotFound:
                continue
        return out
