"""Choosing the vector-store index: approximate nearest neighbours vs exact search.

    .venv/bin/python bench/vector_index.py [--sizes 10000,100000] [--json bench/results/vector_index.json]

384-dim unit vectors (all-minilm-l6-v2's size) drawn around 2,000 cluster centres, as sentence
embeddings of a document collection cluster by topic; 500 queries drawn the same way. For each
library available: build time, query latency p50/p99 (one query at a time, k=10), recall@10
against exact search (NumPy matrix product over all vectors), and index size on disk.
Candidates: usearch (HNSW), faiss-cpu (HNSW), exact NumPy. A missing library is skipped visibly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIM, K, QUERIES = 384, 10, 500


def _data(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, DIM)).astype(np.float32)

    def draw(count: int) -> np.ndarray:
        x = centres[rng.integers(0, len(centres), count)] + 0.6 * rng.standard_normal((count, DIM)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return draw(n), draw(QUERIES)


def _exact(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    scores = queries @ vectors.T
    top = np.argpartition(-scores, K, axis=1)[:, :K]
    return top


def _recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(np.mean([len(set(map(int, f)) & set(map(int, t))) / K for f, t in zip(found, truth, strict=True)]))


def _timed_queries(search, queries: np.ndarray) -> tuple[list[np.ndarray], list[float]]:  # type: ignore[no-untyped-def]
    found, ms = [], []
    for q in queries:
        began = time.perf_counter()
        found.append(search(q))
        ms.append(1000 * (time.perf_counter() - began))
    return found, ms


def bench_numpy(vectors: np.ndarray, queries: np.ndarray, tmp: Path) -> dict:
    began = time.perf_counter()
    np.save(tmp / "exact.npy", vectors)
    build = time.perf_counter() - began

    def search(q: np.ndarray) -> np.ndarray:
        scores = vectors @ q
        return np.argpartition(-scores, K)[:K]

    found, ms = _timed_queries(search, queries)
    return {"build_s": build, "found": found, "ms": ms, "bytes": (tmp / "exact.npy").stat().st_size}


def bench_usearch(vectors: np.ndarray, queries: np.ndarray, tmp: Path) -> dict:
    from usearch.index import Index

    began = time.perf_counter()
    index = Index(ndim=DIM, metric="cos", dtype="f32", connectivity=16, expansion_add=128, expansion_search=64)
    index.add(np.arange(len(vectors)), vectors, threads=os.cpu_count() or 1)
    index.save(str(tmp / "u.usearch"))
    build = time.perf_counter() - began

    def search(q: np.ndarray) -> np.ndarray:
        return index.search(q, K).keys

    found, ms = _timed_queries(search, queries)
    return {"build_s": build, "found": found, "ms": ms, "bytes": (tmp / "u.usearch").stat().st_size}


def bench_faiss(vectors: np.ndarray, queries: np.ndarray, tmp: Path) -> dict:
    import faiss

    began = time.perf_counter()
    index = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 128
    index.add(vectors)
    index.hnsw.efSearch = 64
    faiss.write_index(index, str(tmp / "f.faiss"))
    build = time.perf_counter() - began

    def search(q: np.ndarray) -> np.ndarray:
        return index.search(q[None, :], K)[1][0]

    found, ms = _timed_queries(search, queries)
    return {"build_s": build, "found": found, "ms": ms, "bytes": (tmp / "f.faiss").stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "vector_index.json")
    args = parser.parse_args()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        vectors, queries = _data(n)
        truth = _exact(vectors, queries)
        for name, run in (("numpy exact", bench_numpy), ("usearch hnsw", bench_usearch), ("faiss hnsw", bench_faiss)):
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    r = run(vectors, queries, Path(tmp))
            except ImportError as exc:
                print(f"{name}: skipped ({exc})")
                continue
            ms = sorted(r["ms"])
            rows.append({"library": name, "vectors": n, "build_s": round(r["build_s"], 2),
                         "query_p50_ms": round(statistics.median(ms), 3),
                         "query_p99_ms": round(ms[int(0.99 * len(ms))], 3),
                         "recall_at_10": round(_recall(r["found"], truth), 4),
                         "disk_mb": round(r["bytes"] / 2**20, 1)})  # fmt: skip
    header = ("library", "vectors", "build s", "p50 ms", "p99 ms", "recall@10", "disk MB")
    print("\n{:14} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8}".format(*header))
    for r in rows:
        print(f"{r['library']:14} {r['vectors']:>8} {r['build_s']:>8} {r['query_p50_ms']:>8} {r['query_p99_ms']:>8} "
              f"{r['recall_at_10']:>10} {r['disk_mb']:>8}")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
