"""Truncation drops the fewest oldest messages that fit, rounded up to a stable point, in about
log2(N) tries; a growing history keeps its first message (so the engine's cached prefix) across turns."""

from __future__ import annotations

import math
import random

import pytest

from homeport.services.inference.truncation import dropped_to_fit, spacing_for, stable_points


def _suffix_sums(sizes: list[int]) -> list[int]:
    sums = [0] * (len(sizes) + 1)
    for n in range(len(sizes) - 1, -1, -1):
        sums[n] = sums[n + 1] + sizes[n]
    return sums


async def _dropped(sizes: list[int], context: int, most: int) -> tuple[int | None, int]:
    """Messages of `sizes` tokens (oldest first) in a context: the count dropped, and the tries."""
    tries: list[int] = []
    left = _suffix_sums(sizes)

    async def attempt(dropped: int) -> int | None:
        tries.append(dropped)
        return dropped if left[dropped] <= context else None

    async def measured() -> list[int]:
        return sizes[:most]

    return await dropped_to_fit(attempt, most, measured), len(tries)


def test_stable_points_mark_each_multiple_once() -> None:
    assert stable_points([3, 3, 3, 3], 4) == [2, 3, 4]  # running totals 3, 6, 9, 12 reach 4, 8, 12
    assert stable_points([10, 1, 1], 4) == [1, 3]  # 10 passes 4 and 8 at once; 12 reaches 12
    assert stable_points([1, 1], 4) == []
    assert [spacing_for(n) for n in (0, 7, 8, 2047, 2048, 8191, 8192)] == [1, 1, 2, 256, 512, 1024, 2048]


@pytest.mark.anyio
async def test_the_fewest_dropped_rounded_up_to_a_stable_point_in_logarithmic_tries() -> None:
    rng = random.Random(3)
    for _ in range(500):
        sizes = [rng.randint(1, 50) for _ in range(rng.randint(1, 3000))]
        context, most = rng.randint(50, 2000), len(sizes) - 1
        left = _suffix_sums(sizes)
        fewest = next((n for n in range(most + 1) if left[n] <= context), None)
        dropped, tries = await _dropped(sizes, context, most)
        if fewest is None:
            assert dropped is None
            continue
        assert dropped is not None and left[dropped] <= context
        if fewest == 0:
            assert (dropped, tries) == (0, 1)
            continue
        kept = left[fewest] - left[most]
        points = [p for p in stable_points(sizes[:most], spacing_for(kept)) if fewest <= p < most]
        assert dropped == (points[0] if points else fewest)
        assert left[fewest] - left[dropped] <= kept // 4 + max(sizes)  # at most a quarter and a message lost
        assert tries <= 3 + math.ceil(math.log2(most + 1))


@pytest.mark.anyio
async def test_a_growing_history_keeps_its_first_message_for_many_turns() -> None:
    rng = random.Random(5)
    sizes = [rng.randint(20, 120) for _ in range(400)]
    context, first, changes = 2048, [], 0
    for turn in range(60, 400):
        dropped, _ = await _dropped(sizes[:turn], context, turn - 1)
        assert dropped is not None
        if first and dropped != first[-1]:
            changes += 1
            assert dropped > first[-1]  # never back to an older first message
        first.append(dropped)
    grown = sum(sizes[60:400])
    assert changes <= grown / 256 + 4  # every 256 tokens of growth; dropping the fewest changes it nearly every turn
    assert changes >= grown / context  # and it does move on


@pytest.mark.anyio
async def test_nothing_dropped_when_it_fits_or_nothing_may_go() -> None:
    assert await _dropped([5, 5, 5], 100, 2) == (0, 1)
    assert await _dropped([5, 5, 5], 1, 0) == (None, 1)
    assert await _dropped([5, 5, 5], 4, 2) == (None, 2)  # even the last one alone is too long
