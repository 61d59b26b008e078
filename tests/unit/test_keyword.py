"""Keyword search over chunks by the database's full-text engine (FTS5 / PostgreSQL), kept in step
with inserts and deletes; scoped to one vector store."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert

from homeport.services.retrieval.keyword import keyword_hits
from homeport.storage.db import Database
from homeport.storage.tables import ChunkRow

pytestmark = pytest.mark.anyio

TEXTS = [
    "The quarterly report shows revenue grew in every region.",
    "Printer error ZX9931 means the paper tray is misaligned.",
    "Reseat the printer tray and restart; most printer errors clear.",
]


async def test_rare_words_rank_first_and_deletes_are_forgotten(db: Database) -> None:
    rows = [{"vector_store_id": "vs_a", "file_id": f"f{i}", "seq": 0, "text": t, "tokens": 5, "vector": b""}
            for i, t in enumerate(TEXTS)]  # fmt: skip
    rows.append({"vector_store_id": "vs_other", "file_id": "x", "seq": 0, "text": TEXTS[1], "tokens": 5, "vector": b""})
    async with db.sessions() as session, session.begin():
        await session.execute(insert(ChunkRow), rows)
    hits = await keyword_hits(db, "vs_a", "what is ZX9931?", 10)
    assert [f for _, f, _ in hits] == ["f1"] and hits[0][2] > 0  # only this store's chunk
    printer = await keyword_hits(db, "vs_a", "printer tray", 10)
    assert {f for _, f, _ in printer} == {"f1", "f2"}
    assert await keyword_hits(db, "vs_a", "???", 10) == []  # no words: nothing (and no syntax error)
    async with db.sessions() as session, session.begin():
        await session.execute(delete(ChunkRow).where(ChunkRow.file_id == "f1"))
    assert await keyword_hits(db, "vs_a", "ZX9931", 10) == []
