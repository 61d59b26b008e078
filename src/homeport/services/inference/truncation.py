"""Truncation that drops the oldest messages of a history until the prompt fits (the Responses
API's `truncation: "auto"`, an assistant run's `truncation_strategy: auto`).

Each try renders and tokenizes the whole prompt, so dropping one message a try cost a history of
N messages N tries, each as long as the history: a long thread or conversation took minutes a
turn. Dropping more messages never makes a prompt longer, so the fewest that must go are found by
halving instead: about log2(N) tries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["fewest_dropped"]

Plan = TypeVar("Plan")


async def fewest_dropped(attempt: Callable[[int], Awaitable[Plan | None]], most: int) -> Plan | None:
    """`attempt(n)` plans the prompt with its `n` oldest droppable messages gone, or gives None
    when that does not fit. The plan with the fewest gone that fits (none gone, if that fits),
    or None when even `most` gone does not."""
    plan = await attempt(0)
    if plan is not None or most <= 0:
        return plan
    best = await attempt(most)
    if best is None:
        return None
    fails, fits = 0, most  # attempt(fails) did not fit, attempt(fits) = best did
    while fits - fails > 1:
        middle = (fails + fits) // 2
        plan = await attempt(middle)
        if plan is None:
            fails = middle
        else:
            fits, best = middle, plan
    return best
