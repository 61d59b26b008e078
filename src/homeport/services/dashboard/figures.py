"""The dashboard's figures, read from the daily tables only (usage rollups and request stats), so a
page costs the same at a million requests as at ten. Raw records are read only for the latest
requests of the logs page, by index."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from ...storage.db import Database
from ...storage.tables import RequestStatsDailyRow, UsageDailyRow, UsageRow
from ..platform.usage import bucket_ms

__all__ = ["Scope", "Day", "LatencyRow", "KeyTotal", "daily", "latency", "top_keys", "recent", "csv_rows",
           "CSV_COLUMNS"]  # fmt: skip

DAY = 86400
TOKEN_KINDS = frozenset({"completions", "embeddings", "moderations"})
"""Kinds whose records count tokens (audio kinds count characters or seconds there)."""


@dataclass(frozen=True)
class Scope:
    """What a page shows: a time range (whole days, UTC) and optional filters."""

    start: int
    end: int
    project_id: str | None = None
    key_id: str | None = None
    model: str | None = None

    @classmethod
    def last_days(cls, days: int, now: float | None = None, **filters: Any) -> Scope:
        today = int(now or time.time()) // DAY * DAY
        return cls(today - (days - 1) * DAY, today + DAY, **filters)

    @property
    def days(self) -> list[int]:
        return list(range(self.start, self.end, DAY))


@dataclass
class Day:
    """One day's totals, and the same split by the stacking group (model or project)."""

    start: int
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    micro_usd: int = 0
    by_group: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class LatencyRow:
    model: str
    requests: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class KeyTotal:
    key_id: str
    requests: int
    tokens: int
    micro_usd: int


def _filtered(query: Any, table: Any, scope: Scope, *, keys: bool = True) -> Any:
    if scope.project_id is not None:
        query = query.where(table.project_id == scope.project_id)
    if keys and scope.key_id is not None:
        query = query.where(table.key_id == scope.key_id)
    if scope.model is not None:
        query = query.where(table.model == scope.model)
    return query


async def daily(db: Database, scope: Scope, stack_by: str = "model") -> tuple[list[Day], list[str]]:
    """Requests, tokens and cost per day, each split by `stack_by` (model | project_id | key_id)."""
    t = UsageDailyRow
    group = getattr(t, stack_by)
    index = ((t.day - scope.start) // DAY).label("index")  # grouped by label: PostgreSQL sees one expression
    query = _filtered(
        select(index, group, t.kind, func.sum(t.requests), func.sum(t.prompt_tokens),
               func.sum(t.completion_tokens), func.sum(t.input_micro_usd + t.output_micro_usd))
        .where(t.day >= scope.start, t.day < scope.end)
        .group_by(index, group, t.kind),
        t, scope,
    )  # fmt: skip
    days = [Day(start) for start in scope.days]
    totals: dict[str, int] = defaultdict(int)
    async with db.sessions() as session:
        rows = (await session.execute(query)).all()
    for index, name, kind, requests, prompt, completion, cost in rows:
        day, name = days[int(index)], name or "(none)"
        tokens_in, tokens_out = (int(prompt or 0), int(completion or 0)) if kind in TOKEN_KINDS else (0, 0)
        sums = day.by_group.setdefault(name, {"requests": 0, "tokens": 0, "micro_usd": 0})
        sums["requests"] += int(requests)
        sums["tokens"] += tokens_in + tokens_out
        sums["micro_usd"] += int(cost or 0)
        day.requests += int(requests)
        day.input_tokens += tokens_in
        day.output_tokens += tokens_out
        day.micro_usd += int(cost or 0)
        totals[name] += tokens_in + tokens_out + int(requests)
    return days, sorted(totals, key=lambda n: -totals[n])


def _percentile(histogram: list[tuple[int, int]], share: float) -> float | None:
    """The upper edge of the bucket where `share` of the requests is reached (histogram sorted by bucket)."""
    total = sum(n for _, n in histogram)
    if not total:
        return None
    seen = 0
    for bucket, n in histogram:
        seen += n
        if seen >= share * total:
            return bucket_ms(bucket)
    return bucket_ms(histogram[-1][0])


async def latency(db: Database, scope: Scope) -> list[LatencyRow]:
    """Requests, errors and latency p50/p99 per model, then for all models together ('all').
    Not split by key: the stats table has no key column (its rows stay few)."""
    t = RequestStatsDailyRow
    query = _filtered(
        select(t.model, t.latency_bucket, func.sum(t.requests), func.sum(t.errors))
        .where(t.day >= scope.start, t.day < scope.end)
        .group_by(t.model, t.latency_bucket)
        .order_by(t.model, t.latency_bucket),
        t, scope, keys=False,
    )  # fmt: skip
    async with db.sessions() as session:
        rows = (await session.execute(query)).all()
    per_model: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for model, bucket, requests, errors in rows:
        per_model[model].append((int(bucket), int(requests), int(errors)))
    everything: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    out = []
    for model, buckets in per_model.items():
        for bucket, n, errors in buckets:
            everything[bucket][0] += n
            everything[bucket][1] += errors
        out.append(_row(model, buckets))
    out.sort(key=lambda r: -r.requests)
    out.append(_row("all", sorted((b, n, e) for b, (n, e) in everything.items())))
    return out


def _row(model: str, buckets: list[tuple[int, int, int]]) -> LatencyRow:
    histogram = [(b, n) for b, n, _ in buckets]
    requests, errors = sum(n for _, n, _ in buckets), sum(e for _, _, e in buckets)
    return LatencyRow(model, requests, errors, _percentile(histogram, 0.5), _percentile(histogram, 0.99))


async def top_keys(db: Database, scope: Scope, limit: int = 5) -> list[KeyTotal]:
    """The keys with the most tokens in the range (requests break ties)."""
    t = UsageDailyRow
    tokens = func.sum(t.prompt_tokens + t.completion_tokens)
    query = _filtered(
        select(t.key_id, func.sum(t.requests), tokens, func.sum(t.input_micro_usd + t.output_micro_usd))
        .where(t.day >= scope.start, t.day < scope.end, t.key_id != "", t.kind.in_(TOKEN_KINDS))
        .group_by(t.key_id)
        .order_by(tokens.desc(), func.sum(t.requests).desc())
        .limit(limit),
        t, scope,
    )  # fmt: skip
    async with db.sessions() as session:
        rows = (await session.execute(query)).all()
    return [KeyTotal(k, int(n), int(tok or 0), int(cost or 0)) for k, n, tok, cost in rows]


async def recent(db: Database, project_id: str | None, limit: int = 100, before: int | None = None) -> list[UsageRow]:
    """The latest requests (every status), newest first; of one project when given."""
    query = select(UsageRow).order_by(UsageRow.id.desc()).limit(limit)
    if project_id is not None:  # '' stands for "no project" (NULL in raw records)
        query = query.where(UsageRow.project_id == project_id if project_id else UsageRow.project_id.is_(None))
    if before is not None:
        query = query.where(UsageRow.id < before)
    async with db.sessions() as session:
        return list(await session.scalars(query))


CSV_COLUMNS = ("day", "kind", "project_id", "key_id", "model", "requests", "input_tokens", "output_tokens",
               "input_cached_tokens", "cost_usd")  # fmt: skip


async def csv_rows(db: Database, scope: Scope) -> list[tuple[Any, ...]]:
    """The daily usage rollups (per day, kind, project, key and model), for the CSV export."""
    t = UsageDailyRow
    query = _filtered(
        select(t.day, t.kind, t.project_id, t.key_id, t.model, t.requests, t.prompt_tokens, t.completion_tokens,
               t.cached_tokens, t.input_micro_usd + t.output_micro_usd)
        .where(t.day >= scope.start, t.day < scope.end)
        .order_by(t.day, t.kind, t.project_id, t.key_id, t.model),
        t, scope,
    )  # fmt: skip
    async with db.sessions() as session:
        rows = (await session.execute(query)).all()
    return [
        (time.strftime("%Y-%m-%d", time.gmtime(int(d))), kind, p or "", k or "", m, int(n), int(i or 0), int(o or 0),
         int(c or 0), f"{int(cost or 0) / 1e6:.6f}")
        for d, kind, p, k, m, n, i, o, c, cost in rows
    ]  # fmt: skip
