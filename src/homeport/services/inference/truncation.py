"""Truncation that drops the oldest messages of a history until the prompt fits (the Responses
API's `truncation: "auto"`, an assistant run's `truncation_strategy: auto`).

Two costs shape it:
- Each try renders and tokenizes the whole prompt, so dropping one message a try cost a history of
  N messages N tries, each as long as the history: a long thread or conversation took minutes a
  turn. Dropping more messages never makes a prompt longer, so the fewest that must go are found
  by halving: about log2(N) tries.
- The engine reuses the cached prefix of the last prompt, so a conversation's next turn reads only
  its new messages, unless its first message changed. Dropping the fewest that fit drops one or
  two more each turn, and each turn then reads the whole context again (8,192 tokens: seconds on
  a fast CPU, a minute or more on a slow one). So the count is rounded up to a *stable point*:
  where the history's running token count, from its first message, first reaches a multiple of a
  spacing, the largest power of two within a quarter of the history that fits. A point depends
  only on the messages before it (and the spacing changes only when the room for history crosses
  a power of two), so the next turns keep the same first message and the same cached prefix until
  the history has grown by the spacing again. The price: a prompt holds up to a quarter of the
  history that would fit (and one message) less.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

__all__ = ["dropped_to_fit", "message_text", "spacing_for", "stable_points"]

Plan = TypeVar("Plan")


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


def spacing_for(kept: int) -> int:
    """The largest power of two within a quarter of `kept` tokens (at least 1)."""
    return 1 << max(0, (kept // 4).bit_length() - 1)


def message_text(message: Mapping[str, Any]) -> str:
    """What a chat message says, for its size: its text and its tool calls' arguments."""
    content = message.get("content")
    calls = message.get("tool_calls") or []
    return (content if isinstance(content, str) else "") + "".join(c["function"]["arguments"] for c in calls)


async def dropped_to_fit(
    attempt: Callable[[int], Awaitable[Plan | None]], most: int, sizes: Callable[[], Awaitable[list[int]]]
) -> Plan | None:
    """`attempt(n)` plans the prompt with its `n` oldest droppable messages gone, or gives None
    when that does not fit; `sizes()` gives the first `most` droppable messages' token counts.

    The plan with nothing dropped if that fits; else with the fewest dropped that fit, rounded up
    to the next stable point below `most` if there is one; None when even `most` gone does not fit."""
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
    counts = await sizes()
    spacing = spacing_for(sum(counts[fits:most]))
    stable = next((p for p in stable_points(counts[:most], spacing) if p >= fits), most)
    if stable in (fits, most):  # already at a point, or the next one would leave only the last message
        return best
    return await attempt(stable) or best
