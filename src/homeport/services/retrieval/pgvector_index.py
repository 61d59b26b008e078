"""Vector search inside PostgreSQL with pgvector: one copy of the vectors, in the database, that
every replica searches — no per-process index to hold in memory, load or rebuild.

`chunks.vector` (float32 bytes) stays the source of truth, as with usearch. Where the database has
the `vector` extension, `prepare` adds `chunks.embedding vector` and a trigger that fills it from
`vector` on every insert or update, so every write path — ingestion today, any later one — keeps
the two equal without knowing pgvector exists; chunks written before are filled once.

A store below HNSW_FROM chunks is searched exactly (its rows by the `(vector_store_id, file_id)`
index, sorted by inner product: recall 1.0). A bigger store gets an HNSW index of its own — a
partial index over its rows, built CONCURRENTLY in the background by whichever replica first
sees the store that big (an advisory lock keeps the others off) — and until it is valid the
search stays exact. File filters are part of the SQL; a filter that leaves few of the store's
chunks goes exact over them, as the usearch path does.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ...storage.db import Database
from .vector_index import EXACT_BELOW, Hit

__all__ = ["HNSW_FROM", "PgVectorIndexes", "prepare"]

log = logging.getLogger(__name__)

HNSW_FROM = EXACT_BELOW
"""A store with this many chunks gets its own HNSW index; smaller ones are searched exactly."""

_PREPARE_LOCK = "hashtext('homeport:pgvector-prepare')"

# float32 little-endian bytes -> vector, in SQL: sign, exponent and mantissa of each 4 bytes (exact:
# every step is a float8 operation on values float8 holds exactly; subnormals included).
_DECODE = """
CREATE OR REPLACE FUNCTION homeport_f32_vector(b bytea) RETURNS vector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT array_agg(
    (CASE WHEN s = 1 THEN -1.0::float8 ELSE 1.0::float8 END) *
    (CASE WHEN e = 0 THEN m::float8 * 2.0::float8 ^ -149
          ELSE (1.0::float8 + m::float8 / 8388608.0::float8) * 2.0::float8 ^ (e - 127) END)
    ORDER BY i)::real[]::vector
  FROM (SELECT i,
               get_byte(b, 4 * i + 3) >> 7 AS s,
               ((get_byte(b, 4 * i + 3) & 127) << 1) | (get_byte(b, 4 * i + 2) >> 7) AS e,
               ((get_byte(b, 4 * i + 2) & 127) << 16) | (get_byte(b, 4 * i + 1) << 8) | get_byte(b, 4 * i) AS m
        FROM generate_series(0, length(b) / 4 - 1) AS i) AS parts
$$
"""
_TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION homeport_chunk_embedding() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.embedding := homeport_f32_vector(NEW.vector);
  RETURN NEW;
END
$$
"""
_TRIGGER = """
CREATE OR REPLACE TRIGGER chunks_embedding BEFORE INSERT OR UPDATE OF vector ON chunks
FOR EACH ROW EXECUTE FUNCTION homeport_chunk_embedding()
"""


async def prepare(db: Database) -> bool:
    """Make `chunks` searchable by pgvector if this database can; False where it cannot (SQLite,
    no extension installed, no right to create it). Safe to run from every replica at once; the
    first does the work (the column, the trigger, the chunks written before), the rest only look."""
    if db.engine.dialect.name != "postgresql":
        return False
    async with db.engine.begin() as conn:
        await conn.execute(text(f"SELECT pg_advisory_xact_lock({_PREPARE_LOCK})"))
        if not await conn.scalar(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")):
            return False
        try:
            async with conn.begin_nested():
                await conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as exc:  # e.g. not a superuser: an operator creates it once
            log.warning("pgvector is installed but the extension could not be created (%s); using usearch", exc)
            return False
        if await conn.scalar(text("SELECT 1 FROM pg_trigger WHERE tgname = 'chunks_embedding'")):
            return True  # prepared before: the trigger has kept every row's embedding since
        await conn.execute(text("ALTER TABLE chunks ADD COLUMN IF NOT EXISTS embedding vector"))
        # A row holds the vector twice (bytes and pgvector): the bytes go out of line first, so a
        # search reads the embedding from the row itself (at 384 dims: 1 page read a row, not 4).
        await conn.execute(text("ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN, "
                                "ALTER COLUMN vector SET STORAGE EXTERNAL"))  # fmt: skip
        for statement in (_DECODE, _TRIGGER_FUNCTION, _TRIGGER):
            await conn.execute(text(statement))
        await conn.execute(text("UPDATE chunks SET embedding = homeport_f32_vector(vector) WHERE embedding IS NULL"))
    return True


def _literal(vector: np.ndarray) -> str:
    """pgvector's text form; repr of each float32 reads back as the same float32."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"


_SAFE_ID = re.compile(r"^[A-Za-z0-9_]{1,40}$")


def _index_name(store_id: str) -> str:
    return "ix_chunks_hnsw_" + hashlib.sha256(store_id.encode()).hexdigest()[:24]


# A plan made for these parameters each time: a prepared statement's generic plan cannot see which
# store or files it filters on and sorted the whole table (5 ms became 300 ms from the 6th search).
_CUSTOM_PLANS = text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")
_HNSW_SETTINGS = text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
                      "set_config('hnsw.ef_search', :ef, true)")  # fmt: skip

EXACT_UP_TO = 4000
"""A filter leaving at most this many chunks is answered exactly over them (faster than HNSW
walking far enough to find k of them, and recall 1.0)."""

_VALID = text("SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = :n")


@dataclass
class _Shape:
    version: int
    size: int
    files: int
    dims: int
    indexed: bool
    read_at: float


class PgVectorIndexes:
    """The `VectorIndexes` interface over pgvector (see vector_index.py for the usearch one)."""

    RECHECK_S = 5.0
    """How often a store big enough for HNSW, its index not ready yet, looks again."""
    RETRY_BUILD_S = 600.0
    """How long after a failed build (no memory, no disk) the next is tried."""

    def __init__(self, db: Database, hnsw_from: int = HNSW_FROM) -> None:
        self._db, self._hnsw_from = db, hnsw_from
        self._shapes: dict[str, _Shape] = {}
        self._builds: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, float] = {}  # after a failed build, when to try again

    async def _shape(self, store_id: str) -> _Shape:
        """The store's size and whether its HNSW index is ready, re-read when its version moves (and
        every RECHECK_S while a big store waits for its index, which another replica may build)."""
        async with self._db.sessions() as session:
            version = await session.scalar(text("SELECT version FROM vector_stores WHERE id = :s"), {"s": store_id})
            shape = self._shapes.get(store_id)
            waiting = shape is not None and not shape.indexed and shape.size >= self._hnsw_from
            if shape is not None and shape.version == version and not (
                    waiting and time.monotonic() - shape.read_at > self.RECHECK_S):  # fmt: skip
                return shape
            size, files, dims = (await session.execute(text(
                "SELECT count(*), count(DISTINCT file_id), max(vector_dims(embedding)) FROM chunks "
                "WHERE vector_store_id = :s"), {"s": store_id})).one()  # fmt: skip
            valid = await session.scalar(_VALID, {"n": _index_name(store_id)})
        shape = _Shape(int(version or 0), int(size), int(files), int(dims or 0), bool(valid), time.monotonic())
        self._shapes[store_id] = shape
        later = self._retry_at.get(store_id, 0.0) > time.monotonic()
        if not shape.indexed and shape.size >= self._hnsw_from and store_id not in self._builds and not later:
            task = asyncio.create_task(self._build(store_id, shape.dims))
            self._builds[store_id] = task
            task.add_done_callback(lambda _: self._builds.pop(store_id, None))
        return shape

    async def _build(self, store_id: str, dims: int) -> None:
        """Build the store's HNSW index without blocking writes; one replica at a time."""
        name = _index_name(store_id)
        try:
            if not _SAFE_ID.match(store_id) or dims <= 0:
                return
            async with self._db.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                if not await conn.scalar(text("SELECT pg_try_advisory_lock(hashtext(:n))"), {"n": name}):
                    return  # another replica is building it: look again in RECHECK_S
                try:
                    valid = await conn.scalar(_VALID, {"n": name})
                    if valid is False:  # a build that died half way: start again
                        await conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
                    await conn.execute(text("SET maintenance_work_mem = '512MB'"))
                    await conn.execute(text(
                        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON chunks "
                        f"USING hnsw ((embedding::vector({dims})) vector_ip_ops) WITH (m = 16, ef_construction = 64) "
                        f"WHERE vector_store_id = '{store_id}'"))  # fmt: skip
                finally:
                    await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": name})
            self._shapes.pop(store_id, None)  # built: read again on the next search
        except Exception:
            log.exception("building the HNSW index of %s failed; its searches stay exact", store_id)
            self._retry_at[store_id] = time.monotonic() + self.RETRY_BUILD_S

    async def search(
        self, store_id: str, query: np.ndarray, k: int, allowed_files: set[str] | None = None
    ) -> list[Hit]:
        """The k best chunks by cosine similarity (vectors are unit length), optionally only of some files."""
        shape = await self._shape(store_id)
        if shape.size == 0 or allowed_files == set():
            return []
        q = _literal(query)
        files = sorted(allowed_files) if allowed_files is not None else None
        if shape.indexed and _SAFE_ID.match(store_id):
            want = min(shape.size, max(40, k * 4))
            if files is not None:
                share = len(files) / max(1, shape.files)  # of the chunks, roughly: files are alike enough
                loose = share * shape.size > EXACT_UP_TO
                want = min(shape.size, max(50, math.ceil(6 * k / share)), 1000) if loose else 0
            if want:
                hits = await self._approximate(store_id, shape.dims, q, want, files)
                if files is None or len(hits) >= k:
                    return sorted(hits, key=lambda h: -h.score)[:k]
        return await self._exact(store_id, q, k, files)

    async def _exact(self, store_id: str, q: str, k: int, files: list[str] | None) -> list[Hit]:
        where = "vector_store_id = :s" + ("" if files is None else " AND file_id = ANY(:f)")
        query = text(
            f"SELECT id, file_id, -(embedding <#> CAST(CAST(:q AS text) AS vector)) FROM chunks WHERE {where} "
            "ORDER BY embedding <#> CAST(CAST(:q AS text) AS vector) LIMIT :k"
        )
        async with self._db.sessions() as session, session.begin():
            await session.execute(_CUSTOM_PLANS)
            rows = (await session.execute(query, {"s": store_id, "q": q, "k": k, "f": files})).all()
        return [Hit(int(i), str(f), float(s)) for i, f, s in rows]

    async def _approximate(self, store_id: str, dims: int, q: str, n: int, files: list[str] | None) -> list[Hit]:
        """n candidates from the store's HNSW index (the expression and predicate match the index's,
        the store id inline so the planner can use it); the filter, if any, applies as it walks."""
        vector = f"embedding::vector({dims})"
        where = f"vector_store_id = '{store_id}'" + ("" if files is None else " AND file_id = ANY(:f)")
        query = text(
            f"SELECT id, file_id, -({vector} <#> CAST(CAST(:q AS text) AS vector({dims}))) FROM chunks "
            f"WHERE {where} ORDER BY {vector} <#> CAST(CAST(:q AS text) AS vector({dims})) LIMIT :n"
        )
        async with self._db.sessions() as session, session.begin():
            await session.execute(_HNSW_SETTINGS, {"ef": str(max(40, min(int(n), 1000)))})
            rows = (await session.execute(query, {"q": q, "n": n, "f": files})).all()
        return [Hit(int(i), str(f), float(s)) for i, f, s in rows]

    async def similarities(self, store_id: str, query: np.ndarray, chunk_ids: list[int]) -> list[Hit]:
        """Exact scores of some chunks (e.g. keyword matches the vector search did not return)."""
        if not chunk_ids:
            return []
        async with self._db.sessions() as session, session.begin():
            await session.execute(_CUSTOM_PLANS)
            rows = (await session.execute(text(
                "SELECT id, file_id, -(embedding <#> CAST(CAST(:q AS text) AS vector)) FROM chunks "
                "WHERE vector_store_id = :s AND id = ANY(:ids)"),
                {"s": store_id, "q": _literal(query), "ids": chunk_ids})).all()  # fmt: skip
        return [Hit(int(i), str(f), float(s)) for i, f, s in rows]

    async def drop(self, store_id: str) -> None:
        self._shapes.pop(store_id, None)
        if _SAFE_ID.match(store_id):
            async with self._db.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {_index_name(store_id)}"))
