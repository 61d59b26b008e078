"""Truncation that drops the oldest messages of a history until the prompt fits (the Responses
API's `truncation: "auto"`, an assistant run's `truncation_strategy: auto`).

Two costs shape it:
- Each try renders and tokenizes the whole prompt, so dropping one message a try cost a history of
  N messages N tries, each as long as the history: a long thread or conversation took minutes a
  turn. Dropping more messages never makes a prompt longer, so the count is found by halving:
  about log2(N) tries.
- The engine reuses the cached prefix of the last prompt, so a conversation's next turn reads only
  its new messages, unless its first messages changed. Dropping the fewest that fit drops one or
  two more each turn, and each turn then reads the whole context again (8,192 tokens: seconds on
  a fast CPU, a minute or more on a slow one). So the count is rounded up to a *stable point*:
  where the history's running token count first reaches a multiple of a quarter of the context.
  A point depends only on the messages before it, so the next turns keep the same first message
  and the same cached prefix until the history has grown by about a quarter of the context
  again. The price: a prompt holds up to a quarter of the context (and one message) less than the
  most that would fit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

__all__ = ["STABLE_SHARE", "dropped_to_fit", "message_text", "stable_points"]

Plan = TypeVar("Plan")

STABLE_SHARE = 4
"""Stable points are a context length / STABLE_SHARE tokens of history apart."""


def stable_points(sizes: list[int], spacing: int) -> list[int]:
    """The counts of oldest messages (of the given token sizes) at which their running total first
    reaches each multiple of `spacing`; a message that spans several multiples gives one point."""
    step = max(1, spacing)
    points, total, mark = [], 0, step
    for count, size in enumerate(sizes, 1):
        total += size
        if total >= mark:
            points.append(count)
            mark = (total // step + 1) * step
    return points


def message_text(message: Mapping[str, Any]) -> str:
    """What a chat message says, for its size: its text and its tool calls' arguments."""
    content = message.get("content")
    calls = message.get("tool_calls") or []
    return (content if isinstance(content, str) else "") + "".join(c["function"]["arguments"] for c in calls)


async def dropped_to_fit(
    attempt: Callable[[int], Awaitable[Plan | None]],
    most: int,
    sizes: Callable[[], Awaitable[tuple[list[int], int]]],
) -> Plan | None:
    """`attempt(n)` plans the prompt with its `n` oldest droppable messages gone, or gives None
    when that does not fit; `sizes()` gives the droppable messages' token counts and the context
    length. The plan with nothing dropped if that fits; else the one with the fewest dropped among
    the stable points below `most` and `most` itself; None when even `most` gone does not fit."""
    plan = await attempt(0)
    if plan is not None or most <= 0:
        return plan
    counts, context = await sizes()
    candidates = [p for p in stable_points(counts[:most], context // STABLE_SHARE) if p < most] + [most]
    best = await attempt(candidates[-1])
    if best is None:
        return None
    fails, fits = -1, len(candidates) - 1  # candidates[fits] fit (best); those up to `fails` did not
    while fits - fails > 1:
        middle = (fails + fits) // 2
        plan = await attempt(candidates[middle])
        if plan is None:
            fails = middle
        else:
            fits, best = middle, plan
    return best
