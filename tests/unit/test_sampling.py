"""The NumPy sampler for plain temperature / top_p requests (backends/llamacpp_sampling.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from homeport.backends.base import SamplingParams
from homeport.backends.llamacpp.sampling import _block_sums, _draw, build_sampler

PROBS = np.array([0.4, 0.3, 0.2, 0.1] + [0.0] * 996)
LOGITS = np.log(np.maximum(PROBS, 1e-30)).astype(np.float32)


def _draws(n: int, **params: float) -> Counter[int]:
    sampler = build_sampler(None, None, len(LOGITS), SamplingParams(max_tokens=1, seed=7, **params))  # type: ignore[arg-type]
    return Counter(sampler.sample(None, LOGITS, 0) for _ in range(n))


def test_greedy_takes_the_most_likely_token() -> None:
    assert _draws(20, temperature=0.0) == Counter({0: 20})


def test_temperature_one_follows_the_distribution() -> None:
    counts = _draws(20_000, temperature=1.0)
    assert set(counts) == {0, 1, 2, 3}
    for token, p in enumerate(PROBS[:4]):
        assert abs(counts[token] / 20_000 - p) < 0.015


def test_top_p_keeps_the_smallest_nucleus_reaching_it() -> None:
    counts = _draws(20_000, temperature=1.0, top_p=0.5)  # 0.4 < 0.5 ≤ 0.4 + 0.3: tokens 0 and 1
    assert set(counts) == {0, 1}
    assert abs(counts[0] / 20_000 - 4 / 7) < 0.015


def test_a_seed_repeats_its_draws() -> None:
    assert _draws(50, temperature=1.0, top_p=0.9) == _draws(50, temperature=1.0, top_p=0.9)
    first = build_sampler(None, None, 1000, SamplingParams(max_tokens=1, temperature=1.0, seed=1))  # type: ignore[arg-type]
    again = build_sampler(None, None, 1000, SamplingParams(max_tokens=1, temperature=1.0, seed=1))  # type: ignore[arg-type]
    assert [first.sample(None, LOGITS, 0) for _ in range(30)] == [again.sample(None, LOGITS, 0) for _ in range(30)]


def test_draws_reach_every_block_and_the_ragged_tail() -> None:
    # 1000 tokens: three blocks of 256, then a tail of 232 (sampling._block_sums); mass in each.
    probs = np.zeros(1000)
    probs[[5, 300, 700, 999]] = [0.1, 0.2, 0.3, 0.4]
    logits = np.log(np.maximum(probs, 1e-30)).astype(np.float32)
    sampler = build_sampler(None, None, len(logits), SamplingParams(max_tokens=1, temperature=1.0, seed=3))  # type: ignore[arg-type]
    counts = Counter(sampler.sample(None, logits, 0) for _ in range(20_000))
    assert set(counts) == {5, 300, 700, 999}
    for token in (5, 300, 700, 999):
        assert abs(counts[token] / 20_000 - probs[token]) < 0.015


def test_a_draw_at_the_very_total_takes_the_last_token_with_weight() -> None:
    weights = np.zeros(600, dtype=np.float32)
    weights[[10, 300]] = [1.0, 2.0]  # the last block (512-599, the tail) holds nothing
    sums = _block_sums(weights)
    assert _draw(weights, sums, float(sums[-1])) == 300
    assert _draw(weights, sums, 0.5) == 10
