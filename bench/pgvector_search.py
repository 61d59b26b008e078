"""Vector search on pgvector against the usearch index, on the same PostgreSQL rows, with 1 and 3
replicas.

    .venv/bin/python bench/pgvector_search.py [--chunks 100000] [--json bench/results/pgvector_search.json]

A throwaway PostgreSQL with pgvector (tests/clusters.py: the machine's own if its
postgresql-NN-pgvector is installed, else the pgserver wheel's PostgreSQL 16 + pgvector 0.6.2)
gets one vector store of N chunks: 384-dim unit vectors around 2,000 topic centres (as
bench/vector_search.py draws them), 100 chunks a file. Each backend answers k=10 queries one at
a time: p50/p99 latency and recall@10 against exact NumPy search, unfiltered and with a filter
matching 10% of the files. "3 replicas" is three processes searching at once, each with its own
backend object (usearch: its own index, built from the database; pgvector: the one in the
database): the latency each query saw, queries/s over all three, and what a replica had to do
before its first answer (build its index, or nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "bench")]

from sqlalchemy import insert, text  # noqa: E402
from vector_search import DIM, K, _vectors  # noqa: E402

from homeport.services.retrieval.pgvector_index import PgVectorIndexes, prepare  # noqa: E402
from homeport.services.retrieval.vector_index import VectorIndexes  # noqa: E402
from homeport.storage.db import Database  # noqa: E402
from homeport.storage.tables import ChunkRow, VectorStoreRow  # noqa: E402

STORE = "vs_bench"


def _rss_mb() -> float:
    """This process's resident memory now (what its index holds, measured before and after)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _data(n: int, queries: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    return _vectors(n, rng, centres), _vectors(queries, rng, centres), [f"file-{i}" for i in range(max(10, n // 100))]


async def _fill(url: str, n: int) -> dict:
    db = Database(url)
    await db.migrate()
    assert await prepare(db), "no pgvector in this cluster"
    vectors, _, files = _data(n, 1)
    began = time.perf_counter()
    async with db.sessions() as session, session.begin():
        session.add(VectorStoreRow(id=STORE, project_id=None, name="bench", created_at=0, last_active_at=0,
                                   metadata_json="{}", expires_after_days=None, model="m", version=1))  # fmt: skip
        for start in range(0, n, 5000):
            await session.execute(insert(ChunkRow), [
                {"id": i + 1, "vector_store_id": STORE, "file_id": files[i % len(files)], "seq": i, "text": "t",
                 "tokens": 0, "vector": vectors[i].tobytes()} for i in range(start, min(n, start + 5000))])  # fmt: skip
    insert_s = time.perf_counter() - began
    pg = PgVectorIndexes(db)
    began = time.perf_counter()
    await pg.search(STORE, vectors[0], K)  # starts the HNSW build in the background
    while not (await pg._shape(STORE)).indexed:
        await asyncio.sleep(0.5)
    build_s = time.perf_counter() - began
    async with db.sessions() as session:
        await session.execute(text("ANALYZE chunks"))
        size = await session.scalar(text("SELECT pg_total_relation_size('chunks')"))
    await db.close()
    return {"insert_s_with_trigger": round(insert_s, 1), "hnsw_build_s": round(build_s, 1),
            "chunks_table_mb": round(int(size or 0) / 2**20)}  # fmt: skip


async def _searches(backend: str, url: str, n: int, queries: int, offset: int, go: bool) -> dict:
    """One replica: set up its backend, (wait for the go line,) answer its share of the queries."""
    db = Database(url)
    vectors, qs, files = _data(n, queries * 4)
    qs = qs[offset : offset + queries]
    rss0 = _rss_mb()
    index = PgVectorIndexes(db) if backend == "pgvector" else VectorIndexes(db, Path(tempfile.mkdtemp()) / "idx")
    began = time.perf_counter()
    await index.search(STORE, qs[0], K)  # usearch: builds its index from the database; pgvector: nothing to do
    first_s = time.perf_counter() - began
    rss = _rss_mb() - rss0
    if go:
        print("ready", flush=True)
        sys.stdin.readline()
    allowed = set(files[::10])
    mask = np.asarray([files[i % len(files)] in allowed for i in range(n)])
    out: dict = {"first_search_s": round(first_s, 2), "memory_mb": round(rss)}
    began_all = time.perf_counter()
    for mode, only in (("", None), ("filtered_", allowed)):
        ms, recall = [], []
        for q in qs:
            began = time.perf_counter()
            hits = await index.search(STORE, q, K, only)
            ms.append(1000 * (time.perf_counter() - began))
            scores = q @ vectors.T if only is None else np.where(mask, q @ vectors.T, -np.inf)
            truth = set(map(int, np.argsort(-scores)[:K] + 1))
            recall.append(len({h.chunk_id for h in hits} & truth) / K)
        out[f"{mode}ms"] = ms
        out[f"{mode}recall_at_10"] = float(np.mean(recall))
    out["seconds"] = time.perf_counter() - began_all
    await db.close()
    return out


def _table(rows: list[dict]) -> str:
    head = ("backend", "replicas", "first answer s", "MB/replica", "p50 ms", "p99 ms", "recall@10",
            "filtered p50", "filtered p99", "filtered recall", "queries/s")  # fmt: skip
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        lines.append(" | ".join(str(r[k]) for k in ("backend", "replicas", "first_search_s", "memory_mb", "p50_ms",
                     "p99_ms", "recall_at_10", "filtered_p50_ms", "filtered_p99_ms", "filtered_recall_at_10",
                     "queries_per_s")))  # fmt: skip
    return "\n".join(lines)


def _summary(backend: str, parts: list[dict]) -> dict:
    out: dict = {"backend": backend, "replicas": len(parts),
                 "first_search_s": max(p["first_search_s"] for p in parts),
                 "memory_mb": max(p["memory_mb"] for p in parts)}  # fmt: skip
    for mode in ("", "filtered_"):
        ms = sorted(m for p in parts for m in p[f"{mode}ms"])
        out[f"{mode}p50_ms"] = round(statistics.median(ms), 2)
        out[f"{mode}p99_ms"] = round(ms[int(0.99 * len(ms))], 2)
        out[f"{mode}recall_at_10"] = round(float(np.mean([p[f"{mode}recall_at_10"] for p in parts])), 4)
    total = sum(2 * len(p["ms"]) for p in parts)
    out["queries_per_s"] = round(total / max(p["seconds"] for p in parts), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", nargs=3, metavar=("BACKEND", "URL", "OFFSET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        backend, url, offset = args.worker
        result = asyncio.run(_searches(backend, url, args.chunks, args.queries, int(offset), go=True))
        print(json.dumps(result), flush=True)
        return

    from tests.clusters import pgvector_bin_dir, throwaway_cluster

    bin_dir = pgvector_bin_dir()
    if bin_dir is None:
        sys.exit("no PostgreSQL with pgvector: install postgresql-NN-pgvector or the test extra (pgserver)")
    with throwaway_cluster(bin_dir) as url:
        setup = asyncio.run(_fill(url, args.chunks))
        print(f"{args.chunks} chunks, {DIM} dims: {setup}", flush=True)
        rows = []
        for backend in ("usearch", "pgvector"):
            rows.append(_summary(backend, [asyncio.run(_searches(backend, url, args.chunks, args.queries, 0,
                                                                 go=False))]))  # fmt: skip
            print(_table(rows[-1:]), flush=True)
            workers = [subprocess.Popen([sys.executable, __file__, "--chunks", str(args.chunks), "--queries",
                                         str(args.queries), "--worker", backend, url, str(i * args.queries)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"}) for i in range(3)]  # fmt: skip
            for w in workers:  # each has built what it needs before any searches
                assert w.stdout is not None and w.stdout.readline().strip() == "ready"
            for w in workers:
                assert w.stdin is not None
                w.stdin.write("go\n")
                w.stdin.flush()
            parts = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
            rows.append(_summary(backend, parts))
            print(_table(rows[-1:]), flush=True)
    print()
    print(_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"setup": setup, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
