"""Vector search in PostgreSQL with pgvector (services/retrieval/pgvector_index.py), on a throwaway
cluster that has the extension: the float32 bytes decoded exactly, the same answers as the usearch
index over the same rows, a big store's HNSW index built once and shared, filters in the SQL."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
from sqlalchemy import insert, text

from homeport.services.retrieval.indexes import Indexes
from homeport.services.retrieval.pgvector_index import PgVectorIndexes, prepare
from homeport.services.retrieval.vector_index import VectorIndexes
from homeport.storage.db import Database
from homeport.storage.tables import ChunkRow, VectorStoreRow
from tests.clusters import fresh_database, pgvector_bin_dir, throwaway_cluster

pytestmark = pytest.mark.anyio

DIM = 32
HNSW = "ix_chunks_hnsw_"
DEADLINE_S = 180  # an HNSW build on a slow machine; waited on as a condition


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    bin_dir = pgvector_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL with pgvector here (postgresql-NN-pgvector or the pgserver test dependency)")
    with throwaway_cluster(bin_dir) as url:
        yield url


@pytest.fixture
async def db(cluster: str) -> AsyncIterator[Database]:
    import asyncpg

    admin = await asyncpg.connect("postgresql://" + cluster.split("://", 1)[1])
    try:
        async with fresh_database(admin, cluster.rsplit("/", 1)[0], "homeport_pgv") as database:
            yield database
    finally:
        await admin.close()


def _unit(rng: np.random.Generator, n: int, centres: np.ndarray | None = None) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    if centres is not None:
        x = centres[rng.integers(0, len(centres), n)] + 0.5 * x
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


async def _store(db: Database, store_id: str, vectors: np.ndarray, files: int, first_id: int = 1,
                 new: bool = True) -> None:  # fmt: skip
    async with db.sessions() as session, session.begin():
        if new:
            session.add(VectorStoreRow(id=store_id, project_id=None, name="t", created_at=0, last_active_at=0,
                                       metadata_json="{}", expires_after_days=None, model="m", version=1))  # fmt: skip
        else:
            await session.execute(text("UPDATE vector_stores SET version = version + 1 WHERE id = :s"), {"s": store_id})
        for start in range(0, len(vectors), 2000):
            await session.execute(insert(ChunkRow), [
                {"id": first_id + i, "vector_store_id": store_id, "file_id": f"file-{i % files}", "seq": i,
                 "text": "t", "tokens": 1, "vector": vectors[i].tobytes()}
                for i in range(start, min(len(vectors), start + 2000))])  # fmt: skip


async def test_the_extension_is_found_or_not_and_sqlite_keeps_usearch(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert await prepare(db) and await prepare(db)  # twice: every replica runs it at start
    sqlite = Database(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    await sqlite.migrate()
    indexes = Indexes(sqlite, tmp_path / "idx")
    await indexes.start()
    assert indexes.kind == "usearch" and not await prepare(sqlite)
    await sqlite.close()
    with pytest.raises(RuntimeError, match="pgvector"):
        await Indexes(sqlite, tmp_path / "idx", "pgvector").start()


async def test_vectors_are_decoded_exactly_before_and_after_prepare(db: Database) -> None:
    special = np.asarray([0.0, -0.0, 1.0, -1.0, 1e-40, -3e-39, 3.4e38, 1.17549435e-38, 0.1, -2.5e-8], dtype=np.float32)
    rng = np.random.default_rng(1)
    before = np.concatenate([special, rng.standard_normal(DIM - len(special)).astype(np.float32)])[None, :]
    await _store(db, "vs_a", before, files=1)  # written before pgvector: backfilled
    assert await prepare(db)
    after = rng.standard_normal((5, DIM)).astype(np.float32) * 1e3
    await _store(db, "vs_a", after, files=1, first_id=2, new=False)  # written after: the trigger fills it
    async with db.sessions() as session:
        rows = (await session.execute(text("SELECT id, embedding::real[] FROM chunks ORDER BY id"))).all()
    stored = np.concatenate([before, after])
    assert len(rows) == 6
    for (chunk_id, values), want in zip(rows, stored, strict=True):
        got = np.asarray(values, dtype=np.float32)
        assert struct.pack(f"{DIM}f", *got) == struct.pack(f"{DIM}f", *want), chunk_id  # bit for bit


async def test_small_stores_answer_exactly_as_usearch_does(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert await prepare(db)
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 600)
    await _store(db, "vs_small", vectors, files=6)
    pg, us = PgVectorIndexes(db), VectorIndexes(db, tmp_path / "idx")
    for q in _unit(rng, 20):
        truth = np.argsort(-(vectors @ q))[:10] + 1
        for allowed in (None, {"file-1", "file-4"}):
            got, want = await pg.search("vs_small", q, 10, allowed), await us.search("vs_small", q, 10, allowed)
            assert [h.chunk_id for h in got] == [h.chunk_id for h in want]
            assert [h.file_id for h in got] == [h.file_id for h in want]
            assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
            if allowed is None:
                assert [h.chunk_id for h in got] == list(truth)
            else:
                assert all(h.file_id in allowed for h in got)
        some = [5, 77, 300, 599, 10_000]  # the last one is no chunk
        scored = {h.chunk_id: h.score for h in await pg.similarities("vs_small", q, some)}
        assert sorted(scored) == [5, 77, 300, 599]
        assert all(abs(scored[i] - float(vectors[i - 1] @ q)) < 1e-5 for i in scored)
    assert await pg.search("vs_small", vectors[0], 5, set()) == []
    assert await pg.search("vs_missing", vectors[0], 5) == []


async def _indexed(pg: PgVectorIndexes, store_id: str, probe: np.ndarray) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not (await pg._shape(store_id)).indexed:
        assert time.monotonic() < deadline, "the HNSW index was never built"
        await pg.search(store_id, probe, 1)
        await asyncio.sleep(0.2)


async def test_a_big_store_gets_one_hnsw_index_that_replicas_share(db: Database) -> None:
    assert await prepare(db)
    rng = np.random.default_rng(3)
    centres = _unit(rng, 40)
    vectors = _unit(rng, 4000, centres)
    await _store(db, "vs_big", vectors, files=40)
    await _store(db, "vs_other", _unit(rng, 300), files=3, first_id=10_001)  # stays out of vs_big's answers
    replica_a, replica_b = PgVectorIndexes(db, hnsw_from=1000), PgVectorIndexes(db, hnsw_from=1000)
    queries = _unit(rng, 50, centres)
    first = await replica_a.search("vs_big", queries[0], 10)  # exact while the index builds
    assert [h.chunk_id for h in first] == list(np.argsort(-(vectors @ queries[0]))[:10] + 1)
    await _indexed(replica_a, "vs_big", queries[0])
    await _indexed(replica_b, "vs_big", queries[0])  # the other replica finds it built
    async with db.sessions() as session:
        count = await session.scalar(text(f"SELECT count(*) FROM pg_indexes WHERE indexname LIKE '{HNSW}%'"))
        await session.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(r[0] for r in (await session.execute(text(
            "EXPLAIN SELECT id FROM chunks WHERE vector_store_id = 'vs_big' "
            f"ORDER BY embedding::vector({DIM}) <#> CAST('[{','.join(['0'] * DIM)}]' AS vector({DIM})) LIMIT 10"
        ))).all())  # fmt: skip
    assert count == 1 and "ix_chunks_hnsw_" in plan
    allowed = {f"file-{i}" for i in range(0, 40, 10)}  # 10% of the chunks
    mask = np.asarray([f"file-{i % 40}" in allowed for i in range(len(vectors))])
    recall, filtered_recall = [], []
    for q in queries:
        truth = set(np.argsort(-(vectors @ q))[:10] + 1)
        recall.append(len({h.chunk_id for h in await replica_b.search("vs_big", q, 10)} & truth) / 10)
        truth_f = set(np.argsort(-np.where(mask, vectors @ q, -np.inf))[:10] + 1)
        hits = await replica_b.search("vs_big", q, 10, allowed)
        assert all(h.file_id in allowed for h in hits)
        filtered_recall.append(len({h.chunk_id for h in hits} & truth_f) / 10)
    assert np.mean(recall) >= 0.95 and np.mean(filtered_recall) >= 0.95, (np.mean(recall), np.mean(filtered_recall))
    await replica_a.drop("vs_big")
    async with db.sessions() as session:
        assert await session.scalar(text(f"SELECT count(*) FROM pg_indexes WHERE indexname LIKE '{HNSW}%'")) == 0
