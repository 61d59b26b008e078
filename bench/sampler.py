"""The per-token cost of sampling on real logits (the default chat model's 49,152-token vocabulary):
Homeport's NumPy sampler against llama.cpp's own sampler chain, for the same settings.

    .venv/bin/python bench/sampler.py

The logits are the model's for a chat prompt's next token. Each row: microseconds per sample
(median of 5 runs of 2,000 samples). With continuous batching every running sequence samples
between two decode steps, on the one driver thread, while the cores wait (backends/llamacpp/sampling.py).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _us(sample: Callable[[], int], n: int = 2000) -> float:
    for _ in range(50):
        sample()
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(n):
            sample()
        runs.append((time.perf_counter() - began) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    from llama_cpp._internals import LlamaSampler

    from homeport.backends.base import Message, SamplingParams
    from homeport.backends.llamacpp.engine import LlamaCppEngine
    from homeport.backends.llamacpp.sampling import Sampler, build_sampler
    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS, EngineSettings

    engine = LlamaCppEngine(locate_weights(DEFAULT_MODELS[0], Path(tempfile.mkdtemp())), settings=EngineSettings())
    s, lib = engine.scheduler, engine.scheduler._lib
    prompt = engine.apply_chat_template([Message("user", "Tell me a story about the sea.")])
    for i, token in enumerate(prompt):
        s._put(i, token, i, 0, i == len(prompt) - 1)
    s._batch.n_tokens = len(prompt)
    s._decode()
    logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(s._ctx, len(prompt) - 1), shape=(s._n_vocab,))

    index = len(prompt) - 1
    print(f"vocabulary {len(logits)}; microseconds per sample\n")
    print("| sampling | Homeport (NumPy) | llama.cpp chain |\n|---|---|---|")
    for name, temperature, top_p in (("greedy", 0.0, 1.0), ("temperature 0.8", 0.8, 1.0),
                                     ("temperature 0.8, top_p 0.9", 0.8, 0.9)):  # fmt: skip
        ours = build_sampler(lib, s._vocab, s._n_vocab, SamplingParams(max_tokens=1, temperature=temperature,
                                                                        top_p=top_p, seed=1))  # fmt: skip
        chain = LlamaSampler()
        if temperature == 0:
            chain.add_greedy()
        else:
            if top_p < 1.0:
                chain.add_top_p(top_p, 1)
            chain.add_temp(temperature)
            chain.add_dist(1)
        theirs = Sampler(lib, chain)
        a = _us(lambda o=ours: o.sample(s._ctx, logits, index))
        b = _us(lambda t=theirs: t.sample(s._ctx, logits, index))
        print(f"| {name} | {a:.0f} | {b:.0f} |")


if __name__ == "__main__":
    main()
