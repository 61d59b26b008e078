"""How the embedding encoder's sub-batch size moves its speed on long inputs (the vector-store
ingestion case) and on short sentences, on the ONNX Runtime graph in fp32 and int8.

    .venv/bin/python bench/embedding_batches.py

Inputs: 120 chunks of 330-400 word-piece ids (ingestion's 400-token chunks) and the 1,000 sentences of
bench/embedding_engines.py. Each is run in fixed sub-batches of 1, 4, 8 and 32 inputs and through
`embed_tokens` (sub-batches of at most 512 padded tokens and 32 inputs: backends/bert.py); prints
inputs/s, median of 3. Then the graph with ONNX Runtime's LayerNormalization and SkipLayerNormalization
kernels against the same norms as primitive ops (what backends/bert_onnx.py builds). Also the chunking
of a 60,000-word text (bench/vector_search.py's) in seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def main() -> None:
    from embedding_engines import SENTENCES, _median_s

    from homeport.backends.bert import BertEncoder
    from homeport.backends.bert_onnx import OnnxBert, build_graph, quantized
    from homeport.services.inference.registry import locate_weights
    from homeport.services.retrieval.chunking import chunk_text
    from homeport.settings import DEFAULT_MODELS

    model_dir = locate_weights(next(m for m in DEFAULT_MODELS if m.id == "all-minilm-l6-v2"), Path("/nonexistent"))
    rng = np.random.default_rng(0)
    long_inputs = [[int(t) for t in rng.integers(2000, 20000, int(rng.integers(330, 401)))] for _ in range(120)]
    print("| runtime | inputs | 1 a run | 4 | 8 | 32 | embed_tokens |\n|---|---|---|---|---|---|---|")
    for runtime in ("onnx", "onnx-int8"):
        encoder = BertEncoder(model_dir, runtime=runtime)
        for name, inputs in (("400-token chunks", long_inputs), ("short sentences", encoder.tokenize(SENTENCES))):

            def fixed(size: int, e: BertEncoder = encoder, inputs: list[list[int]] = inputs) -> None:
                order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
                for start in range(0, len(order), size):
                    e._forward([[e._cls, *inputs[i], e._sep] for i in order[start : start + size]])

            runs = [lambda s=s: fixed(s) for s in (1, 4, 8, 32)]
            runs.append(lambda e=encoder, inputs=inputs: e.embed_tokens(inputs))
            rates = [len(inputs) / _median_s(run) for run in runs]
            print(f"| {runtime} | {name} | " + " | ".join(f"{r:.1f}/s" for r in rates) + " |")
    print("\nlayer norms as ONNX Runtime's fused kernels vs as primitive ops (the default), embed_tokens inputs/s:\n")
    print("| runtime | inputs | fused kernels | primitive ops | gain |\n|---|---|---|---|---|")
    for runtime in ("onnx", "onnx-int8"):
        encoder = BertEncoder(model_dir, runtime=runtime)
        c = encoder.config
        graph = build_graph(encoder._w, c.hidden, c.heads, c.layers, c.eps, fused_norms=True)
        forms = {"fused": OnnxBert(quantized(graph) if runtime == "onnx-int8" else graph), "primitive": encoder._onnx}
        for name, inputs in (("400-token chunks", long_inputs), ("short sentences", encoder.tokenize(SENTENCES))):
            rates = {}
            for form, session in forms.items():
                encoder._onnx = session
                rates[form] = len(inputs) / _median_s(lambda e=encoder, inputs=inputs: e.embed_tokens(inputs))
            print(f"| {runtime} | {name} | {rates['fused']:.1f}/s | {rates['primitive']:.1f}/s | "
                  f"{rates['primitive'] / rates['fused']:.2f}x |")
    words = "the harbour pilot guides each vessel through the narrow channel at high tide".split()
    text = " ".join(words[i % len(words)] + ("." if i % 17 == 16 else "") for i in range(60_000))
    seconds = _median_s(lambda: chunk_text(text, encoder.tokenize, 400, 200))
    print(f"\nchunking 60,000 words in 400-token chunks: {seconds:.3f} s")


if __name__ == "__main__":
    main()
