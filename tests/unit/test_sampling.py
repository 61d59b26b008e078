"""The NumPy sampler for plain temperature / top_p requests (backends/llamacpp/sampling.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from homeport.backends.base import SamplingParams
from homeport.backends.llamacpp.sampling import _block_sums, _draw, build_sampler

PROBS = np.array([0.4, 0.3, 0.2, 0.1] + [0.0] * 996)
LOGITS = np.log(np.maximum(PROBS, 1e-30)).astype(np.float32)


def _draws(n: int, logits: np.ndarray = LOGITS, **params: float) -> Counter[int]:
    sampler = build_sampler(None, None, len(logits), SamplingParams(max_tokens=1, seed=7, **params))  # type: ignore[arg-type]
    return Counter(sampler.sample(None, logits, 0) for _ in range(n))


def test_greedy_takes_the_most_likely_token() -> None:
    assert _draws(20, temperature=0.0) == Counter({0: 20})


# Four likely tokens among 1,000 (weighed one by one), and the four alone (the whole vocabulary near
# the top: weighed in one pass, as at a high temperature).
VOCABULARIES = pytest.mark.parametrize("logits", [LOGITS, LOGITS[:4]], ids=["likely-few", "all-likely"])


@VOCABULARIES
def test_temperature_one_follows_the_distribution(logits: np.ndarray) -> None:
    counts = _draws(20_000, logits, temperature=1.0)
    assert set(counts) == {0, 1, 2, 3}
    for token, p in enumerate(PROBS[:4]):
        assert abs(counts[token] / 20_000 - p) < 0.015


@VOCABULARIES
def test_top_p_keeps_the_smallest_nucleus_reaching_it(logits: np.ndarray) -> None:
    counts = _draws(20_000, logits, temperature=1.0, top_p=0.5)  # 0.4 < 0.5 ≤ 0.4 + 0.3: tokens 0 and 1
    assert set(counts) == {0, 1}
    assert abs(counts[0] / 20_000 - 4 / 7) < 0.015


def test_a_seed_repeats_its_draws() -> None:
    assert _draws(50, temperature=1.0, top_p=0.9) == _draws(50, temperature=1.0, top_p=0.9)
    first = build_sampler(None, None, 1000, SamplingParams(max_tokens=1, temperature=1.0, seed=1))  # type: ignore[arg-type]
    again = build_sampler(None, None, 1000, SamplingParams(max_tokens=1, temperature=1.0, seed=1))  # type: ignore[arg-type]
    assert [first.sample(None, LOGITS, 0) for _ in range(30)] == [again.sample(None, LOGITS, 0) for _ in range(30)]


def test_draws_reach_every_block_and_the_ragged_tail() -> None:
    # 1000 tokens: three blocks of 256, then a tail of 232 (sampling._block_sums); mass in each.
    # Drawn over the whole vocabulary at once, as at a high temperature.
    probs = np.zeros(1000)
    probs[[5, 300, 700, 999]] = [0.1, 0.2, 0.3, 0.4]
    logits = np.log(np.maximum(probs, 1e-30)).astype(np.float32)
    sampler = build_sampler(None, None, len(logits), SamplingParams(max_tokens=1, temperature=1.0, seed=3))  # type: ignore[arg-type]
    counts = Counter(sampler._whole(logits, logits.max()) for _ in range(20_000))  # type: ignore[attr-defined]
    assert set(counts) == {5, 300, 700, 999}
    for token in (5, 300, 700, 999):
        assert abs(counts[token] / 20_000 - probs[token]) < 0.015


def test_a_draw_at_the_very_total_takes_the_last_token_with_weight() -> None:
    weights = np.zeros(600, dtype=np.float32)
    weights[[10, 300]] = [1.0, 2.0]  # the last block (512-599, the tail) holds nothing
    sums = _block_sums(weights)
    assert _draw(weights, sums, float(sums[-1])) == 300
    assert _draw(weights, sums, 0.5) == 10



def _tail_logits(likely: int, tail: float) -> np.ndarray:
    """`likely` tokens at logit 0 and 50,000 unlikely ones at `tail`: each unlikely one is below
    the tokens the sampler weighs one by one (sampling._TAIL at temperature 1), but together they
    hold a share that a sampler leaving them out would miss."""
    logits = np.full(likely + 50_000, tail, dtype=np.float32)
    logits[:likely] = 0.0
    return logits


def test_the_unlikely_tokens_together_get_their_exact_share() -> None:
    logits = _tail_logits(1, -16.3)
    mass = 50_000 * np.exp(-16.3)  # 0.0042, under the sampler's bound for them (50,000·e^-16 = 0.0056)
    sampler = build_sampler(None, None, len(logits), SamplingParams(max_tokens=1, temperature=1.0, seed=11))  # type: ignore[arg-type]
    draws = [sampler.sample(None, logits, 0) for _ in range(50_000)]
    unlikely = [t for t in draws if t >= 1]
    expected = mass / (1 + mass) * len(draws)  # about 210 ± 15; taking the bound for their mass gives 280
    assert abs(len(unlikely) - expected) < 0.2 * expected, (len(unlikely), expected)
    assert len(set(unlikely)) > 0.9 * len(unlikely)  # spread over the 50,000, not one token


def test_top_p_counts_the_unlikely_tokens_in_the_total() -> None:
    # The total is 2 + 50,000·e^-16.1 ≈ 2.005, so top_p 0.5 of it is just over token 0's mass of 1: the
    # nucleus holds tokens 0 and 1. Counting only the likely tokens would cut it after token 0.
    logits = _tail_logits(2, -16.1)
    sampler = build_sampler(None, None, len(logits), SamplingParams(max_tokens=1, temperature=1.0, top_p=0.5, seed=5))  # type: ignore[arg-type]
    counts = Counter(sampler.sample(None, logits, 0) for _ in range(2_000))
    assert set(counts) == {0, 1}
    assert abs(counts[0] - counts[1]) < 200
