"""Homeport's NumPy MiniLM encoder vs sentence-transformers (PyTorch) on the same sentences.

    .venv/bin/python bench/embedding_engines.py            # NumPy only (the project venv has no torch)
    # both: a scratch venv with `pip install torch==2.13.0 sentence-transformers pyyaml`, then
    /tmp/st/bin/python bench/embedding_engines.py

Prints seconds for 1,000 short sentences (median of 3) and, with both, the largest difference
between their vectors. Writes bench/results/embedding_engines.json.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

SENTENCES = [f"This is test sentence number {i} about topic {i % 17}." for i in range(1000)]


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

    model_dir = locate_weights(DEFAULT_MODELS[2], Path("/nonexistent"))
    encoder = BertEncoder(model_dir)
    ours = encoder.embed_tokens(encoder.tokenize(SENTENCES))
    result = {"numpy_s": _median_s(lambda: encoder.embed_tokens(encoder.tokenize(SENTENCES)))}
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("sentence-transformers not installed here: NumPy only (see the docstring)")
    else:
        st = SentenceTransformer(str(model_dir), device="cpu")
        st.max_seq_length = 512
        theirs = st.encode(SENTENCES, batch_size=32, normalize_embeddings=True)
        result["sentence_transformers_s"] = _median_s(lambda: st.encode(SENTENCES, batch_size=32))
        result["max_abs_diff"] = float(np.abs(ours - theirs).max())
    for key, value in result.items():
        print(f"{key:<26} {value:.3g}")
    out = REPO / "bench" / "results" / "embedding_engines.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
