"""Usage accounting: every model request recorded, written in batches off the request path,
and reported in OpenAI's organization-usage shapes (time buckets, optional group_by)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select

from ..errors import InvalidRequest
from ..storage.db import Database
from ..storage.tables import UsageRow

__all__ = ["UsageEvent", "UsageRecorder", "usage_report", "BUCKETS"]

log = logging.getLogger("homeport")

BUCKETS = {"1m": 60, "1h": 3600, "1d": 86400}
_GROUPS = {"project_id": UsageRow.project_id, "api_key_id": UsageRow.key_id, "model": UsageRow.model}
_RESULT_OBJECT = {
    "completions": "organization.usage.completions.result",
    "embeddings": "organization.usage.embeddings.result",
}


@dataclass(frozen=True)
class UsageEvent:
    kind: str  # completions | embeddings
    project_id: str | None
    key_id: str | None
    model: str
    endpoint: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    latency_ms: int
    ts: int = 0


class UsageRecorder:
    """Requests hand events to a queue; one task writes them in batches (a slow database
    delays the report by a moment, never a response)."""

    def __init__(self, db: Database, batch: int = 500, every_s: float = 0.5) -> None:
        self._db, self._batch, self._every_s = db, batch, every_s
        self._queue: asyncio.Queue[UsageEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def record(self, event: UsageEvent) -> None:
        self._queue.put_nowait(event if event.ts else _stamped(event))

    async def flush(self) -> None:
        events: list[UsageEvent] = []
        while not self._queue.empty() and len(events) < self._batch:
            events.append(self._queue.get_nowait())
        if events:
            async with self._db.sessions() as session, session.begin():
                await session.execute(insert(UsageRow), [e.__dict__ for e in events])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                while not self._queue.empty():
                    await self.flush()
            except Exception:  # the next round retries what is still queued
                log.exception("writing usage records failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while not self._queue.empty():
            await self.flush()


def _stamped(event: UsageEvent) -> UsageEvent:
    return UsageEvent(**{**event.__dict__, "ts": int(time.time())})


async def usage_report(
    db: Database,
    kind: str,
    *,
    start_time: int,
    end_time: int | None,
    bucket_width: str,
    group_by: list[str],
    project_ids: list[str] | None,
    models: list[str] | None,
    api_key_ids: list[str] | None,
    limit: int | None,
) -> dict[str, Any]:
    if bucket_width not in BUCKETS:
        raise InvalidRequest(f"bucket_width must be one of {sorted(BUCKETS)}.", param="bucket_width")
    for g in group_by:
        if g not in _GROUPS:
            raise InvalidRequest(f"group_by supports {sorted(_GROUPS)}; got '{g}'.", param="group_by")
    width = BUCKETS[bucket_width]
    count = limit or {"1m": 60, "1h": 24, "1d": 7}[bucket_width]
    end = end_time or start_time + width * count
    bucket = (UsageRow.ts - start_time) // width  # SQLAlchemy renders integer division per dialect
    columns: list[Any] = [bucket.label("bucket"), *(_GROUPS[g].label(g) for g in group_by)]
    query = (
        select(
            *columns,
            func.sum(UsageRow.prompt_tokens),
            func.sum(UsageRow.completion_tokens),
            func.sum(UsageRow.cached_tokens),
            func.count(),
        )
        .where(UsageRow.kind == kind, UsageRow.ts >= start_time, UsageRow.ts < end, UsageRow.status < 400)
        .group_by(*columns)
    )
    if project_ids:
        query = query.where(UsageRow.project_id.in_(project_ids))
    if models:
        query = query.where(UsageRow.model.in_(models))
    if api_key_ids:
        query = query.where(UsageRow.key_id.in_(api_key_ids))
    async with db.sessions() as session:
        rows = (await session.execute(query)).all()
    results: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        index, groups = int(row[0]), row[1 : 1 + len(group_by)]
        prompt, completion, cached, n = row[1 + len(group_by) :]
        result: dict[str, Any] = {"object": _RESULT_OBJECT[kind], "input_tokens": int(prompt or 0),
                                  "num_model_requests": int(n)}  # fmt: skip
        if kind == "completions":
            result |= {"output_tokens": int(completion or 0), "input_cached_tokens": int(cached or 0)}
        result |= dict(zip(group_by, groups, strict=True))
        results.setdefault(index, []).append(result)
    buckets = []
    for i in range((end - start_time + width - 1) // width):
        begin = start_time + i * width
        buckets.append(
            {
                "object": "bucket",
                "start_time": begin,
                "end_time": min(begin + width, end),
                "results": results.get(i, []),
            }
        )
    return {"object": "page", "data": buckets, "has_more": False, "next_page": None}
