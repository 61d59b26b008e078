"""Cursor pages as OpenAI lists them: `{"object": "list", "data", "first_id", "last_id", "has_more"}`,
with `after`/`before` naming an object id and `limit` bounding the page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..errors import InvalidRequest

__all__ = ["cursor_page", "check_limit"]

T = TypeVar("T")


def check_limit(limit: int, most: int = 100) -> None:
    if not 1 <= limit <= most:
        raise InvalidRequest(f"limit must be between 1 and {most}.", param="limit")


def cursor_page(
    items: Sequence[T],
    id_of: Callable[[T], str],
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 20,
    most: int = 100,
    dump: Callable[[T], Any] | None = None,
) -> dict[str, Any]:
    """One page of `items` (already in the order asked for)."""
    check_limit(limit, most)
    ids = [id_of(x) for x in items]
    for name, cursor in (("after", after), ("before", before)):
        if cursor is not None and cursor not in ids:
            raise InvalidRequest(f"No object with id '{cursor}' in this list.", param=name)
    if after is not None:
        items, ids = items[ids.index(after) + 1 :], ids[ids.index(after) + 1 :]
    if before is not None:
        cut = ids.index(before)
        items = items[max(0, cut - limit) : cut]
        ids = ids[max(0, cut - limit) : cut]
    data = list(items[:limit])
    return {
        "object": "list",
        "data": [dump(x) for x in data] if dump else data,
        "first_id": id_of(data[0]) if data else None,
        "last_id": id_of(data[-1]) if data else None,
        "has_more": len(items) > limit,
    }
