"""Usage accounting: every model request recorded, written in batches off the request path,
and reported in OpenAI's organization-usage and costs shapes (time buckets, group_by).

Each batch is written twice: the raw records (kept `retention_days`, for minute buckets and
audits) and hourly rollups (summed per hour, kind, project, key and model, kept forever).
Reports on hour-aligned ranges read the rollups, so they cost the same at a million
requests as at ten. For the dashboard, the same sums per day, and every request, errors too,
counted per day, project, model and latency bucket (its error rate and latency percentiles).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from ... import tracing
from ...errors import InvalidRequest
from ...storage.db import Database
from ...storage.tables import RequestStatsDailyRow, UsageDailyRow, UsageHourlyRow, UsageRow

__all__ = ["UsageEvent", "UsageRecorder", "usage_report", "costs_report", "BUCKETS", "latency_bucket", "bucket_ms"]

log = logging.getLogger(__name__)

BUCKETS = {"1m": 60, "1h": 3600, "1d": 86400}
_DAY = 86400
_GROUPS = frozenset({"project_id", "api_key_id", "model"})
_RESULT_OBJECT = {
    "completions": "organization.usage.completions.result",
    "embeddings": "organization.usage.embeddings.result",
    "moderations": "organization.usage.moderations.result",
    "audio_speeches": "organization.usage.audio_speeches.result",
    "audio_transcriptions": "organization.usage.audio_transcriptions.result",
}
_UNITS = {"audio_speeches": "characters", "audio_transcriptions": "seconds"}
"""What an audio kind's records count in their prompt_tokens column, and its report calls it."""


@dataclass(frozen=True)
class UsageEvent:
    kind: str  # completions | embeddings | moderations | audio_speeches | audio_transcriptions
    project_id: str | None
    key_id: str | None
    model: str
    endpoint: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    latency_ms: int
    input_micro_usd: int = 0
    output_micro_usd: int = 0
    ts: int = 0
    flagged: int = 0
    """1 when a project's moderation guardrail flagged the request or its output."""
    request_id: str | None = None


_SUMS = ("prompt_tokens", "completion_tokens", "cached_tokens", "input_micro_usd", "output_micro_usd", "flagged")


def latency_bucket(ms: int) -> int:
    """Quarter-octave buckets: bucket b holds latencies up to 2^(b/4) ms."""
    return math.ceil(4 * math.log2(max(ms, 1)))


def bucket_ms(bucket: int) -> float:
    """A bucket's upper edge in milliseconds."""
    return 2 ** (bucket / 4)


class UsageRecorder:
    """Requests hand events to a queue; one task writes them in batches (a slow database
    delays the report by a moment, never a response)."""

    def __init__(
        self,
        db: Database,
        batch: int = 500,
        every_s: float = 0.5,
        *,
        retention_days: float | None = None,
        touch: Callable[[dict[str, int]], Awaitable[None]] | None = None,
    ) -> None:
        self._db, self._batch, self._every_s = db, batch, every_s
        self._retention_s = None if retention_days is None else retention_days * 86400
        self._touch = touch  # told when keys were last used
        self._queue: asyncio.Queue[UsageEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._pruned_at = 0.0
        self._upserts: dict[Any, Any] = {}  # table → its rollup upsert, built once (see _add)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def record(self, event: UsageEvent) -> None:
        self._queue.put_nowait(event if event.ts else _stamped(event))

    async def flush(self) -> None:
        events: list[UsageEvent] = []
        while not self._queue.empty() and len(events) < self._batch:
            events.append(self._queue.get_nowait())
        if not events:
            return
        rollups: dict[tuple[int, str, str, str, str], dict[str, int]] = {}
        stats: dict[tuple[int, str, str, int], dict[str, int]] = {}
        last_used: dict[str, int] = {}
        for e in events:
            if e.key_id is not None:
                last_used[e.key_id] = max(last_used.get(e.key_id, 0), e.ts)
            counts = stats.setdefault((e.ts - e.ts % _DAY, e.project_id or "", e.model, latency_bucket(e.latency_ms)),
                                      {"requests": 0, "errors": 0})  # fmt: skip
            counts["requests"] += 1
            counts["errors"] += e.status >= 400
            if e.status >= 400:
                continue
            group = (e.ts - e.ts % 3600, e.kind, e.project_id or "", e.key_id or "", e.model)
            sums = rollups.setdefault(group, dict.fromkeys(("requests", *_SUMS), 0))
            sums["requests"] += 1
            for name in _SUMS:
                sums[name] += getattr(e, name)
        days: dict[tuple[int, str, str, str, str], dict[str, int]] = {}
        for (hour, *rest), sums in rollups.items():
            day = days.setdefault((hour - hour % _DAY, *rest), dict.fromkeys(sums, 0))  # type: ignore[arg-type]
            for name, value in sums.items():
                day[name] += value
        try:
            with tracing.span("db.usage_write", **{"homeport.records": len(events)}):
                await self._write(events, rollups, days, stats)
        except Exception:  # rolled back: the events wait for the next round (a database restart)
            for event in events:
                self._queue.put_nowait(event)
            raise
        if self._touch is not None and last_used:
            await self._touch(last_used)

    async def _write(self, events: list[UsageEvent], *groups: dict[Any, dict[str, int]]) -> None:
        """One transaction: the raw records and every rollup's additions."""
        rollups, days, stats = groups
        async with self._db.sessions() as session, session.begin():
            await session.execute(insert(UsageRow), [e.__dict__ for e in events])
            # Sorted: concurrent writers lock rows in one order.
            tables: tuple[tuple[Any, dict[Any, dict[str, int]]], ...] = (
                (UsageHourlyRow, rollups), (UsageDailyRow, days), (RequestStatsDailyRow, stats))  # fmt: skip
            for table, rows_by_group in tables:
                if rows_by_group:
                    index = [c.name for c in table.__table__.primary_key]
                    rows = [{**dict(zip(index, g, strict=True)), **sums} for g, sums in sorted(rows_by_group.items())]
                    await session.execute(self._add(table, index, [*next(iter(rows_by_group.values()))]), rows)

    def _add(self, table: Any, index: list[str], sums: list[str]):  # type: ignore[no-untyped-def]
        """Add to rollup rows, creating them if needed: atomic on either database. Built once per
        table (each table's sums are always the same columns): building it took a fifth of a flush."""
        if table not in self._upserts:
            dialect = postgresql if self._db.engine.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(table)
            added = {name: getattr(table, name) + getattr(stmt.excluded, name) for name in sums}
            self._upserts[table] = stmt.on_conflict_do_update(index_elements=index, set_=added)
        return self._upserts[table]

    async def prune(self, now: float | None = None) -> int:
        """Delete raw records older than the retention period (rollups stay). Returns how many."""
        if self._retention_s is None:
            return 0
        cutoff = int((now or time.time()) - self._retention_s)
        async with self._db.sessions() as session, session.begin():
            result = await session.execute(delete(UsageRow).where(UsageRow.ts < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _run(self) -> None:
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._every_s)
            try:
                while not self._queue.empty():
                    await self.flush()
                if time.monotonic() - self._pruned_at > 3600:
                    self._pruned_at = time.monotonic()
                    if pruned := await self.prune():
                        log.info("usage retention: deleted %d raw records", pruned)
            except Exception:  # the next round retries what is still queued
                log.exception("writing usage records failed")

    async def close(self) -> None:
        """Write what is queued. The writer is told to stop, never cancelled: a write cut off after
        its commit would be put back on the queue and written twice."""
        self._closing.set()
        if self._task is not None:
            await self._task
        while not self._queue.empty():
            await self.flush()


def _stamped(event: UsageEvent) -> UsageEvent:
    return UsageEvent(**{**event.__dict__, "ts": int(time.time())})


@dataclass(frozen=True)
class _Query:
    kind: str
    start: int
    end: int
    width: int
    group_by: list[str]
    project_ids: list[str | None] | None
    models: list[str] | None
    api_key_ids: list[str] | None

    @property
    def uses_rollups(self) -> bool:
        """Hourly rollups answer exactly when every bucket edge falls on an hour."""
        return self.width % 3600 == 0 and self.start % 3600 == 0 and self.end % 3600 == 0


_LAST_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z


def _query(
    kind: str, start_time: int, end_time: int | None, bucket_width: str, limit: int | None, group_by: list[str],
    groups: frozenset[str], project_ids: list[str | None] | None, models: list[str] | None,
    api_key_ids: list[str] | None,
) -> _Query:  # fmt: skip
    if bucket_width not in BUCKETS:
        raise InvalidRequest(f"bucket_width must be one of {sorted(BUCKETS)}.", param="bucket_width")
    for g in group_by:
        if g not in groups:
            raise InvalidRequest(f"group_by supports {sorted(groups)}; got '{g}'.", param="group_by")
    if limit is not None and not 1 <= limit <= 31 * 24 * 60:
        raise InvalidRequest("limit is out of range.", param="limit")
    for name, value in (("start_time", start_time), ("end_time", end_time)):
        if value is not None and not 0 <= value <= _LAST_TIME:  # a database integer cannot hold every int
            raise InvalidRequest(f"{name} must be a Unix time in seconds, 0 to {_LAST_TIME} (9999-12-31).",
                                 param=name)  # fmt: skip
    width = BUCKETS[bucket_width]
    count = limit or {"1m": 60, "1h": 24, "1d": 7}[bucket_width]
    end = end_time or start_time + width * count
    if end <= start_time:
        raise InvalidRequest("end_time must be after start_time.", param="end_time")
    return _Query(kind, start_time, end, width, group_by, project_ids, models, api_key_ids)


async def _sums(db: Database, q: _Query, columns: dict[str, str], null_group: str | None = None) -> list[Any]:
    """Rows of (bucket index, *group values, *sums of `columns`, requests) from rollups or raw records."""
    if q.uses_rollups:
        table: Any = UsageHourlyRow
        ts, count = UsageHourlyRow.hour, func.sum(UsageHourlyRow.requests)
        ok = []
    else:
        table = UsageRow
        ts, count = UsageRow.ts, func.count()  # type: ignore[assignment]
        ok = [UsageRow.status < 400]
    groups = {"project_id": table.project_id, "api_key_id": table.key_id, "model": table.model}
    bucket = (ts - q.start) // q.width  # SQLAlchemy renders integer division per dialect
    keys: list[Any] = [bucket.label("bucket"), *(groups[g].label(g) for g in q.group_by if g in groups)]
    query = (
        select(*keys, *(func.sum(getattr(table, c)) for c in columns.values()), count)
        .where(table.kind == q.kind, ts >= q.start, ts < q.end, *ok)
        .group_by(*keys)
    )
    for values, column in ((q.project_ids, table.project_id), (q.models, table.model), (q.api_key_ids, table.key_id)):
        if values is not None:
            # '' stands for "none" in rollups and NULL in raw records; callers say None.
            wanted = [v for v in values if v is not None]
            none = (column == "") | column.is_(None) if None in values else None
            query = query.where(column.in_(wanted) | none if none is not None else column.in_(wanted))
    async with db.sessions() as session:
        return list((await session.execute(query)).all())


def _buckets(q: _Query, results: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    buckets = []
    for i in range((q.end - q.start + q.width - 1) // q.width):
        begin = q.start + i * q.width
        buckets.append({"object": "bucket", "start_time": begin, "end_time": min(begin + q.width, q.end),
                        "results": results.get(i, [])})  # fmt: skip
    return {"object": "page", "data": buckets, "has_more": False, "next_page": None}


async def usage_report(
    db: Database,
    kind: str,
    *,
    start_time: int,
    end_time: int | None,
    bucket_width: str,
    group_by: list[str],
    project_ids: list[str | None] | None,
    models: list[str] | None,
    api_key_ids: list[str] | None,
    limit: int | None,
) -> dict[str, Any]:
    """OpenAI's usage page. `project_ids` may hold None: requests made with keys of no project."""
    q = _query(kind, start_time, end_time, bucket_width, limit, group_by, _GROUPS, project_ids, models, api_key_ids)
    columns = {"input_tokens": "prompt_tokens", "output_tokens": "completion_tokens",
               "input_cached_tokens": "cached_tokens", "flagged": "flagged"}  # fmt: skip
    results: dict[int, list[dict[str, Any]]] = {}
    for row in await _sums(db, q, columns):
        index, groups = int(row[0]), [g or None for g in row[1 : 1 + len(group_by)]]
        prompt, completion, cached, flagged, n = row[1 + len(group_by) :]
        result: dict[str, Any] = {"object": _RESULT_OBJECT[kind], _UNITS.get(kind, "input_tokens"): int(prompt or 0),
                                  "num_model_requests": int(n)}  # fmt: skip
        if kind == "completions":
            # num_flagged_requests: Homeport's, served requests a project's moderation guardrail flagged
            result |= {"output_tokens": int(completion or 0), "input_cached_tokens": int(cached or 0),
                       "num_flagged_requests": int(flagged or 0)}  # fmt: skip
        result |= dict(zip(group_by, groups, strict=True))
        results.setdefault(index, []).append(result)
    return _buckets(q, results)


_COST_GROUPS = frozenset({"project_id", "api_key_id", "line_item"})


async def costs_report(
    db: Database,
    *,
    start_time: int,
    end_time: int | None,
    bucket_width: str,
    group_by: list[str],
    project_ids: list[str | None] | None,
    api_key_ids: list[str] | None,
    limit: int | None,
) -> dict[str, Any]:
    """OpenAI's costs page: USD by day, grouped by project, key, or line item (`<model>, input|output`)."""
    if bucket_width != "1d":
        raise InvalidRequest("The costs endpoint supports bucket_width '1d' only.", param="bucket_width")
    if limit is not None and not 1 <= limit <= 180:
        raise InvalidRequest("limit must be between 1 and 180.", param="limit")
    wanted = [g for g in group_by if g != "line_item"] + (["model"] if "line_item" in group_by else [])
    results: dict[int, list[dict[str, Any]]] = {}
    for kind in _RESULT_OBJECT:
        q = _query(kind, start_time, end_time, bucket_width, limit, group_by, _COST_GROUPS, project_ids, None,
                   api_key_ids)  # fmt: skip
        q = _Query(q.kind, q.start, q.end, q.width, wanted, q.project_ids, q.models, q.api_key_ids)
        for row in await _sums(db, q, {"input": "input_micro_usd", "output": "output_micro_usd"}):
            index = int(row[0])
            groups = dict(zip(wanted, [g or None for g in row[1 : 1 + len(wanted)]], strict=True))
            cost_in, cost_out = int(row[1 + len(wanted)] or 0), int(row[2 + len(wanted)] or 0)
            both = [("input", cost_in), ("output", cost_out)]
            parts = both if "line_item" in group_by else [("", cost_in + cost_out)]
            for part, micro in parts:
                result: dict[str, Any] = {"object": "organization.costs.result",
                                          "amount": {"value": micro / 1e6, "currency": "usd"}}  # fmt: skip
                for g in group_by:
                    result[g] = f"{groups['model']}, {part}" if g == "line_item" else groups[g]
                results.setdefault(index, []).append(result)
    # Sum the kinds' results that fall in the same group.
    merged: dict[int, list[dict[str, Any]]] = {}
    for index, rows in results.items():
        by_group: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in rows:
            group = tuple(r.get(g) for g in group_by)
            if group in by_group:
                by_group[group]["amount"]["value"] += r["amount"]["value"]
            else:
                by_group[group] = r
        merged[index] = list(by_group.values())
    return _buckets(q, merged)
