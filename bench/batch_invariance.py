"""Is a sequence's output independent of what shares its llama.cpp batch? (Why the engine uses
per-sequence KV streams.)

    .venv/bin/python bench/batch_invariance.py [--json bench/results/batch_invariance.json]

For each KV layout (unified cache / one stream per sequence) and flash attention on/off: 8
prompts decoded greedily for 40 steps alone, then all 8 in one batch per step; and one prompt
read in 5-token chunks vs in one piece. Prints the largest logit difference (0.0 = bit-identical).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

STEPS = 40


def main() -> None:
    import llama_cpp as lc
    from llama_cpp import Llama

    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "batch_invariance.json")
    args = parser.parse_args()
    gguf = locate_weights(DEFAULT_MODELS[0], Path(tempfile.mkdtemp()))
    llm = Llama(str(gguf), n_ctx=64, verbose=False)  # the model and tokenizer
    model = llm._model.model
    n_vocab = lc.llama_n_vocab(lc.llama_model_get_vocab(model))
    prompts = [llm.tokenize(f"Story {k}: once upon a time a lighthouse keeper number {k}".encode(), add_bos=True)
               for k in range(8)]  # fmt: skip
    batch = lc.llama_batch_init(1024, 0, 1)

    def context(fa: int, unified: bool):  # type: ignore[no-untyped-def]
        p = lc.llama_context_default_params()
        p.n_ctx, p.n_batch, p.n_ubatch, p.n_seq_max = 4096, 512, 512, 8
        p.n_threads = p.n_threads_batch = os.cpu_count() or 1
        p.kv_unified, p.flash_attn_type = unified, fa
        return lc.llama_init_from_model(model, p)

    def decode(ctx, items) -> None:  # type: ignore[no-untyped-def]  # items: (token, pos, seq, logits)
        for n, (t, pos, s, want) in enumerate(items):
            batch.token[n], batch.pos[n], batch.n_seq_id[n], batch.logits[n] = t, pos, 1, want
            batch.seq_id[n][0] = s
        batch.n_tokens = len(items)
        assert lc.llama_decode(ctx, batch) == 0

    def logits(ctx, i: int) -> np.ndarray:  # type: ignore[no-untyped-def]
        return np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).copy()

    def alone(fa: int, unified: bool, k: int, chunk: int | None = None) -> list[np.ndarray]:
        ctx, p = context(fa, unified), prompts[k]
        step = chunk or len(p)
        for a in range(0, len(p), step):
            decode(ctx, [(t, a + i, 0, a + i == len(p) - 1) for i, t in enumerate(p[a : a + step])])
        out, pos = [], len(p)
        for _ in range(STEPS):
            out.append(logits(ctx, -1))
            decode(ctx, [(int(np.argmax(out[-1])), pos, 0, True)])
            pos += 1
        lc.llama_free(ctx)
        return out

    def together(fa: int, unified: bool) -> list[list[np.ndarray]]:
        ctx = context(fa, unified)
        items = [(t, i, k, i == len(p) - 1) for k, p in enumerate(prompts) for i, t in enumerate(p)]
        decode(ctx, items)
        rows = [i for i, item in enumerate(items) if item[3]]
        outs: list[list[np.ndarray]] = [[] for _ in prompts]
        pos = [len(p) for p in prompts]
        for _ in range(STEPS):
            step = []
            for k, row in enumerate(rows):
                outs[k].append(logits(ctx, row))
                step.append((int(np.argmax(outs[k][-1])), pos[k], k, True))
                pos[k] += 1
            decode(ctx, step)
            rows = list(range(len(prompts)))
        lc.llama_free(ctx)
        return outs

    results = []
    print(f"{'KV cache':16} {'flash attn':>10} {'batched vs alone':>17} {'chunked vs whole':>17}")
    for unified in (True, False):
        for fa in (lc.LLAMA_FLASH_ATTN_TYPE_ENABLED, lc.LLAMA_FLASH_ATTN_TYPE_DISABLED):
            single = [alone(fa, unified, k) for k in range(len(prompts))]
            chunked = alone(fa, unified, 0, chunk=5)
            batched = together(fa, unified)
            pairs = [(x, y) for k in range(len(prompts)) for x, y in zip(single[k], batched[k], strict=True)]
            d_batch = max(float(np.abs(x - y).max()) for x, y in pairs)
            d_chunk = max(float(np.abs(x - y).max()) for x, y in zip(single[0], chunked, strict=True))
            layout = "unified" if unified else "per sequence"
            results.append({"kv": layout, "flash_attn": bool(fa), "batched_vs_alone": d_batch,
                            "chunked_vs_whole": d_chunk})  # fmt: skip
            print(f"{layout:16} {'on' if fa else 'off':>10} {d_batch:>17.4g} {d_chunk:>17.4g}")
    lc.llama_batch_free(batch)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
