"""The configured rate limits: one row per (owner, model), owner a key or a project."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from ...ids import new_id
from ...storage.db import Database
from ...storage.tables import RateLimitRow
from .limits import Limit

__all__ = ["LimitStore", "limit_of"]


def limit_of(row: RateLimitRow, owner: str) -> Limit:
    return Limit(
        owner, row.owner_id, row.model, row.max_requests_per_1_minute, row.max_tokens_per_1_minute,
        row.max_requests_per_1_day, row.max_tokens_per_1_day, row.batch_1_day_max_input_tokens,
    )  # fmt: skip


class LimitStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def set(self, limit: Limit) -> Limit:
        """Set the limits of one owner on one model (all None: remove them). Returns what is set."""
        c = RateLimitRow.__table__.c
        where = (c.owner_id == limit.owner_id, c.model == limit.model)
        values = {
            "max_requests_per_1_minute": limit.rpm, "max_tokens_per_1_minute": limit.tpm,
            "max_requests_per_1_day": limit.rpd, "max_tokens_per_1_day": limit.tpd,
            "batch_1_day_max_input_tokens": limit.batch_tpd,
        }  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            if all(v is None for v in values.values()):
                await session.execute(delete(RateLimitRow).where(*where))
                return limit
            result = await session.execute(update(RateLimitRow).where(*where).values(**values))
            if not result.rowcount:  # type: ignore[attr-defined]
                session.add(RateLimitRow(id=new_id("rl_", 24), owner_id=limit.owner_id, model=limit.model, **values))
        return limit

    async def of(self, owner: str, owner_id: str) -> list[Limit]:
        async with self._db.sessions() as session:
            rows = await session.scalars(
                select(RateLimitRow).where(RateLimitRow.owner_id == owner_id).order_by(RateLimitRow.model)
            )
            return [limit_of(r, owner) for r in rows]
