"""Homeport's MiniLM encoder (ONNX Runtime graph, its opt-in int8 form, and the NumPy one it replaced) vs
sentence-transformers on PyTorch, on the same 1,000 short sentences and the same cores.

    .venv/bin/python bench/embedding_engines.py [--torch-python /tmp/st/bin/python]

PyTorch is not a dependency: give the interpreter of a scratch venv that has it
(`python3 -m venv /tmp/st && /tmp/st/bin/pip install torch==2.13.0 sentence-transformers`); the
PyTorch side runs there, in a subprocess, and hands its vectors back for comparison. Prints
seconds (median of 3 runs, tokenizing included), sentences/s, the ratio to PyTorch and the
largest difference between vectors. Writes bench/results/embedding_engines.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SENTENCES = [f"This is test sentence number {i} about topic {i % 17}." for i in range(1000)]

_TORCH_SIDE = """
import json, statistics, sys, time
import numpy as np
from sentence_transformers import SentenceTransformer
model_dir, sentences, out = sys.argv[1], json.loads(open(sys.argv[2]).read()), sys.argv[3]
st = SentenceTransformer(model_dir, device="cpu")
st.max_seq_length = 512
vectors = st.encode(sentences, batch_size=32, normalize_embeddings=True)
times = []
for _ in range(3):
    start = time.perf_counter()
    st.encode(sentences, batch_size=32, normalize_embeddings=True)
    times.append(time.perf_counter() - start)
np.save(out, vectors)
import torch
print(json.dumps({"seconds": statistics.median(times), "torch": torch.__version__, "threads": torch.get_num_threads()}))
"""


def _median_s(run) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import numpy as np

    from homeport.backends.bert import BertEncoder
    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS

    parser = argparse.ArgumentParser()
    parser.add_argument("--torch-python", help="a Python with torch and sentence-transformers installed")
    args = parser.parse_args()
    model_dir = locate_weights(next(m for m in DEFAULT_MODELS if m.id == "all-minilm-l6-v2"), Path("/nonexistent"))
    rows: dict[str, dict[str, float]] = {}
    vectors = {}
    for runtime in ("onnx", "onnx-int8", "numpy"):
        encoder = BertEncoder(model_dir, runtime=runtime)
        vectors[runtime] = encoder.embed_tokens(encoder.tokenize(SENTENCES))
        rows[runtime] = {"seconds": _median_s(lambda e=encoder: e.embed_tokens(e.tokenize(SENTENCES)))}
    if args.torch_python:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "s.json").write_text(json.dumps(SENTENCES))
            out = subprocess.run([args.torch_python, "-c", _TORCH_SIDE, str(model_dir), str(Path(tmp) / "s.json"),
                                  str(Path(tmp) / "v.npy")], capture_output=True, text=True, check=True)  # fmt: skip
            torch = json.loads(out.stdout.strip().splitlines()[-1])
            vectors["pytorch"] = np.load(Path(tmp) / "v.npy")
        rows["pytorch"] = {"seconds": torch["seconds"]}
        print(f"PyTorch {torch['torch']} ({torch['threads']} threads), sentence-transformers, batch 32")
    base = rows.get("pytorch", rows["numpy"])["seconds"]
    reference = vectors.get("pytorch", vectors["numpy"])
    print(f"\n{len(SENTENCES):,} sentences, all-minilm-l6-v2\n")
    print("| engine | seconds | sentences/s | speed vs " + ("PyTorch" if "pytorch" in rows else "NumPy") +
          " | max abs diff of vectors |\n|---|---|---|---|---|")  # fmt: skip
    for name, row in rows.items():
        row["per_s"] = len(SENTENCES) / row["seconds"]
        row["ratio"] = base / row["seconds"]
        row["max_abs_diff"] = float(np.abs(vectors[name] - reference).max())
        print(f"| {name} | {row['seconds']:.3f} | {row['per_s']:.0f} | {row['ratio']:.2f}x "
              f"| {row['max_abs_diff']:.1e} |")
    out_file = REPO / "bench" / "results" / "embedding_engines.json"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
