"""Vector-store search and ingestion, through Homeport's own code (no HTTP).

    .venv/bin/python bench/vector_search.py [--sizes 10000,100000] [--json bench/results/vector_search.json]

Search: chunks with 384-dim unit vectors drawn around 2,000 topic centres (as sentence
embeddings cluster) are written to the chunks table of a SQLite database; VectorIndexes (the
usearch HNSW index the server uses, synced from the database, exact re-ranking) answers 500
queries, one at a time, k=10: p50/p99 latency and recall@10 against exact search; plus the
time to build the index from the database (first search) and to load it from disk (restart).
Also one filtered search mode (an attribute filter matching 10% of files), and the keyword
query hybrid search adds (chunks of 60 words from a 5,000-word vocabulary, 5-word queries).

Ingestion: a 60,000-word text document through the real pipeline (extract, chunk in 400
tokens with 200 overlap, embed with all-minilm-l6-v2, store): chunks/s, with the embedding model
on its ONNX Runtime graph, on that graph with int8 weights, and on the NumPy encoder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sqlalchemy import insert  # noqa: E402

from homeport.services.retrieval.keyword import keyword_hits  # noqa: E402
from homeport.services.retrieval.vector_index import VectorIndexes  # noqa: E402
from homeport.storage.db import Database  # noqa: E402
from homeport.storage.tables import ChunkRow, VectorStoreRow  # noqa: E402

DIM, K = 384, 10


def _vectors(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


async def bench_search(n: int, tmp: Path) -> dict:
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)
    vectors, queries = _vectors(n, rng, centres), _vectors(500, rng, centres)
    db = Database(f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
    await db.migrate()
    files = [f"file-{i}" for i in range(max(10, n // 100))]  # 100 chunks a file
    vocabulary = [f"w{i}" for i in range(5000)]
    words = rng.integers(0, len(vocabulary), (n, 60))
    async with db.sessions() as session, session.begin():
        session.add(VectorStoreRow(id="vs_bench", project_id=None, name="bench", created_at=0, last_active_at=0,
                                   metadata_json="{}", expires_after_days=None, model="m", version=1))  # fmt: skip
        for start in range(0, n, 5000):
            await session.execute(insert(ChunkRow), [
                {"id": i + 1, "vector_store_id": "vs_bench", "file_id": files[i % len(files)], "seq": i,
                 "text": " ".join(vocabulary[w] for w in words[i]),
                 "tokens": 0, "vector": vectors[i].tobytes()} for i in range(start, min(n, start + 5000))])  # fmt: skip
    indexes = VectorIndexes(db, tmp / "indexes")
    began = time.perf_counter()
    await indexes.search("vs_bench", queries[0], K)
    build_s = time.perf_counter() - began
    restarted = VectorIndexes(db, tmp / "indexes")
    began = time.perf_counter()
    await restarted.search("vs_bench", queries[0], K)
    load_s = time.perf_counter() - began

    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :K] + 1  # chunk ids start at 1
    allowed = set(files[::10])
    file_of = np.asarray([files[i % len(files)] in allowed for i in range(n)])
    masked = np.where(file_of[None, :], queries @ vectors.T, -np.inf)
    truth_filtered = np.argsort(-masked, axis=1)[:, :K] + 1
    out = {"chunks": n, "index_build_s": round(build_s, 2), "index_load_s": round(load_s, 3)}
    for mode, only, expected in (("", None, truth), ("filtered_", allowed, truth_filtered)):
        ms, recall = [], []
        for q, t in zip(queries, expected, strict=True):
            began = time.perf_counter()
            hits = await indexes.search("vs_bench", q, K, only)
            ms.append(1000 * (time.perf_counter() - began))
            recall.append(len({h.chunk_id for h in hits} & set(map(int, t))) / K)
        ms.sort()
        out |= {f"{mode}p50_ms": round(statistics.median(ms), 3), f"{mode}p99_ms": round(ms[int(0.99 * len(ms))], 3),
                f"{mode}recall_at_10": round(float(np.mean(recall)), 4)}  # fmt: skip
    keyword_ms = []
    for q in rng.integers(0, len(vocabulary), (200, 5)):
        began = time.perf_counter()
        await keyword_hits(db, "vs_bench", " ".join(vocabulary[w] for w in q), 4 * K)
        keyword_ms.append(1000 * (time.perf_counter() - began))
    keyword_ms.sort()
    out |= {"keyword_p50_ms": round(statistics.median(keyword_ms), 3),
            "keyword_p99_ms": round(keyword_ms[int(0.99 * len(keyword_ms))], 3)}  # fmt: skip
    await db.close()
    return out


async def bench_ingestion(tmp: Path, runtime: str = "onnx") -> dict:
    from homeport.protocol.vector_stores import VectorStoreCreate
    from homeport.services.inference.registry import ModelRegistry
    from homeport.services.retrieval.files import FileStore
    from homeport.services.retrieval.ingest import Ingestion
    from homeport.services.retrieval.stores import VectorStoreService
    from homeport.settings import Settings
    from homeport.storage.blobs import LocalBlobStore
    from homeport.storage.jobs import Jobs, open_queue

    settings = Settings(data_dir=tmp / "data", load_models=["all-minilm-l6-v2"],
                        engine={"embedding_runtime": runtime})  # fmt: skip
    db = Database(settings.resolved_database_url)
    await db.migrate()
    registry = ModelRegistry(settings)
    await registry.load(lambda *a: None)
    files = FileStore(db, LocalBlobStore(tmp / "blobs"), 1 << 30)
    jobs = Jobs(open_queue(db.url, db.engine), concurrency=1)
    ingestion = Ingestion(db, files, registry, jobs)
    service = VectorStoreService(db, files, registry, VectorIndexes(db, tmp / "idx"), ingestion, "all-minilm-l6-v2")
    await jobs.start()
    words = "the harbour pilot guides each vessel through the narrow channel at high tide".split()
    text = " ".join(words[i % len(words)] + ("." if i % 17 == 16 else "") for i in range(60_000))

    async def body():  # type: ignore[no-untyped-def]
        yield text.encode()

    stored = await files.create(None, "doc.txt", "assistants", body())
    began = time.perf_counter()
    store = await service.create(None, VectorStoreCreate(file_ids=[stored.id]))
    while (await service.file(None, store.id, stored.id)).status == "in_progress":  # ingested by the job worker
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - began
    chunks = len(await service.file_content(None, store.id, stored.id))
    await jobs.close()
    await registry.close()
    await db.close()
    return {"runtime": runtime, "words": 60_000, "chunks": chunks, "seconds": round(seconds, 2),
            "chunks_per_s": round(chunks / seconds, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "vector_search.json")
    args = parser.parse_args()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(asyncio.run(bench_search(n, Path(tmp))))
    ingestion = []
    for runtime in ("onnx", "onnx-int8", "numpy"):
        with tempfile.TemporaryDirectory() as tmp:
            ingestion.append(asyncio.run(bench_ingestion(Path(tmp), runtime)))
    header = ("chunks", "build s", "load s", "p50 ms", "p99 ms", "recall@10", "filt p50", "filt p99", "filt rec",
              "kw p50", "kw p99")  # fmt: skip
    print("\n{:>8} {:>8} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}".format(*header))
    for r in rows:
        print(f"{r['chunks']:>8} {r['index_build_s']:>8} {r['index_load_s']:>7} {r['p50_ms']:>7} {r['p99_ms']:>7} "
              f"{r['recall_at_10']:>9} {r['filtered_p50_ms']:>9} {r['filtered_p99_ms']:>9} "
              f"{r['filtered_recall_at_10']:>9} {r['keyword_p50_ms']:>7} {r['keyword_p99_ms']:>7}")  # fmt: skip
    for run in ingestion:
        print(f"\ningestion ({run['runtime']}): {run['chunks']} chunks from {run['words']} words in {run['seconds']} s "
              f"= {run['chunks_per_s']} chunks/s")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"search": rows, "ingestion": ingestion}, indent=2))


if __name__ == "__main__":
    main()
