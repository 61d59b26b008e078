"""Keyword (BM25-style) search over a vector store's chunks, by the database's own full-text engine:
SQLite FTS5 `bm25()`, PostgreSQL `ts_rank_cd` over `to_tsvector('simple', text)` (migration 0013).
Query words are OR-ed: a chunk with any of them is a candidate, ranked by how well it matches."""

from __future__ import annotations

import re

from sqlalchemy import text

from ...storage.db import Database

__all__ = ["keyword_hits"]

_WORD = re.compile(r"\w+", re.UNICODE)

_SQLITE = text(
    "SELECT c.id, c.file_id, -bm25(chunks_fts) FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid "
    "WHERE chunks_fts MATCH :match AND c.vector_store_id = :store ORDER BY bm25(chunks_fts) LIMIT :n"
)
_POSTGRES = text(
    "SELECT id, file_id, ts_rank_cd(to_tsvector('simple', text), to_tsquery('simple', :match)) AS s "
    "FROM chunks WHERE vector_store_id = :store AND to_tsvector('simple', text) @@ to_tsquery('simple', :match) "
    "ORDER BY s DESC LIMIT :n"
)


async def keyword_hits(db: Database, store_id: str, query: str, n: int) -> list[tuple[int, str, float]]:
    """Up to n (chunk id, file id, score > 0; higher is better) for the query's words."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:32]
    if not words:
        return []
    sqlite = db.engine.dialect.name == "sqlite"
    match = " OR ".join(f'"{w}"' for w in words) if sqlite else " | ".join(words)
    async with db.sessions() as session:
        rows = (await session.execute(_SQLITE if sqlite else _POSTGRES, {"match": match, "store": store_id,
                                                                         "n": n})).all()  # fmt: skip
    return [(int(i), str(f), float(s)) for i, f, s in rows if float(s) > 0]
