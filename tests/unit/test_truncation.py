"""Truncation drops the fewest oldest messages that make a prompt fit, in about log2(N) tries."""

from __future__ import annotations

import math
import random

import pytest

from homeport.services.inference.truncation import fewest_dropped


def _suffix_sums(sizes: list[int]) -> list[int]:
    sums = [0] * (len(sizes) + 1)
    for n in range(len(sizes) - 1, -1, -1):
        sums[n] = sums[n + 1] + sizes[n]
    return sums


async def _fewest(sizes: list[int], budget: int, most: int) -> tuple[int | None, int]:
    """Messages of `sizes` tokens (oldest first) under a budget: the count dropped, and the tries."""
    tries: list[int] = []
    left = _suffix_sums(sizes)

    async def attempt(dropped: int) -> int | None:
        tries.append(dropped)
        return dropped if left[dropped] <= budget else None

    return await fewest_dropped(attempt, most), len(tries)


@pytest.mark.anyio
async def test_the_fewest_dropped_in_logarithmic_tries() -> None:
    rng = random.Random(3)
    for _ in range(500):
        sizes = [rng.randint(1, 50) for _ in range(rng.randint(1, 3000))]
        budget, most = rng.randint(1, 2000), len(sizes) - 1
        left = _suffix_sums(sizes)
        expected = next((n for n in range(most + 1) if left[n] <= budget), None)
        dropped, tries = await _fewest(sizes, budget, most)
        assert dropped == expected
        assert tries <= 2 + math.ceil(math.log2(most + 1))


@pytest.mark.anyio
async def test_nothing_dropped_when_it_fits_or_nothing_may_go() -> None:
    assert await _fewest([5, 5, 5], 100, 2) == (0, 1)
    assert await _fewest([5, 5, 5], 1, 0) == (None, 1)
    assert await _fewest([5, 5, 5], 4, 2) == (None, 2)  # even the last one alone is too long
