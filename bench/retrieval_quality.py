"""Does hybrid (keyword + vector) file search find more than vector search alone? Labelled queries.

    .venv/bin/python bench/retrieval_quality.py [--products 200] [--json bench/results/retrieval_quality.json]

A catalogue of `--products` one-paragraph product files (a random code like `KX-4821`, a
category, a city, a weight) goes into one vector store on the real embedding model, through the
HTTP API. Two query sets with known answers:
  code     "What is product KX-4821?"                     → the file with that code
  topic    "a <category> made in <city>"                   → any file with both
Reported: hit@1 and hit@5 for `ranker: none` (vectors only) and the default (hybrid), with the
embedding model on its fp32 graph and with int8 weights (`embedding_runtime: onnx-int8`): the
recall that quantization costs.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import openai

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

CATEGORIES = ["kettle", "bicycle", "desk lamp", "backpack", "drill", "headphones", "tent", "blender"]
CITIES = ["Lisbon", "Osaka", "Denver", "Krakow", "Nairobi", "Lyon", "Hanoi", "Quebec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "retrieval_quality.json")
    args = parser.parse_args()
    rng = random.Random(11)
    products = []
    for _ in range(args.products):
        code = f"{rng.choice('ABCDEFGHKLMNPRSTVXZ')}{rng.choice('ABCDEFGHKLMNPRSTVXZ')}-{rng.randrange(1000, 9999)}"
        products.append({"code": code, "category": rng.choice(CATEGORIES), "city": rng.choice(CITIES),
                         "kg": rng.randrange(1, 30)})  # fmt: skip
    results = {}
    for runtime in ("onnx", "onnx-int8"):
        results |= {f"{mode} ({runtime})": r for mode, r in _measure(products, runtime).items()}
    print(f"\n{'mode':24} {'code hit@1':>10} {'code hit@5':>10} {'topic hit@1':>11} {'topic hit@5':>11}")
    for mode, r in results.items():
        print(f"{mode:24} {r['code_hit@1']:>10.2f} {r['code_hit@5']:>10.2f} {r['topic_hit@1']:>11.2f} "
              f"{r['topic_hit@5']:>11.2f}")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


def _measure(products: list[dict], runtime: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config = {"load_models": ["all-minilm-l6-v2"], "cache_enabled": False, "engine": {"embedding_runtime": runtime}}
        server = start_server(Path(tmp), config)
        try:
            client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120)
            ids = {}
            for p in products:
                text = (f"Product {p['code']} is a {p['category']} made in {p['city']}. It weighs {p['kg']} kg, "
                        f"ships worldwide and comes with a two-year warranty.")  # fmt: skip
                ids[client.files.create(file=(f"{p['code']}.txt", text.encode()), purpose="assistants").id] = p
            store = client.vector_stores.create(file_ids=list(ids))
            while client.vector_stores.retrieve(store.id).status != "completed":
                time.sleep(0.5)
            results = {}
            for mode, options in (("vector only", {"ranker": "none"}), ("hybrid", None)):
                scores = {"code": [0, 0], "topic": [0, 0]}
                for p in products[:100]:

                    def same_code(q: dict, p: dict = p) -> bool:
                        return q["code"] == p["code"]

                    def same_topic(q: dict, p: dict = p) -> bool:
                        return (q["category"], q["city"]) == (p["category"], p["city"])

                    queries = {"code": (f"What is product {p['code']}?", same_code),
                               "topic": (f"a {p['category']} made in {p['city']}", same_topic)}  # fmt: skip
                    for kind, (query, right) in queries.items():
                        extra = {"ranking_options": options} if options else {}
                        found = client.vector_stores.search(store.id, query=query, max_num_results=5, **extra).data
                        hits = [right(ids[r.file_id]) for r in found]
                        scores[kind][0] += bool(hits[:1] and hits[0])
                        scores[kind][1] += any(hits)
                results[mode] = {f"{k}_hit@{n}": v[i] / 100 for k, v in scores.items() for i, n in ((0, 1), (1, 5))}
        finally:
            stop_server(server)
    return results


if __name__ == "__main__":
    main()
