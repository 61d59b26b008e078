"""Key budgets: tokens and spend a key may use in all, taken and given back atomically."""

from __future__ import annotations

from sqlalchemy import or_, update

from ...storage.db import Database
from ...storage.tables import ApiKeyRow

__all__ = ["Budgets"]


class Budgets:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def take(self, key_id: str, tokens: int, micro_usd: int) -> tuple[int, int] | None:
        """Add `tokens` and `micro_usd` to what the key has used if both stay within its budgets:
        one conditional UPDATE, atomic on SQLite and PostgreSQL alike, so concurrent requests on
        any number of replicas can never overshoot. Returns the new (tokens, micro-USD) totals,
        or None when the request would not fit."""
        c = ApiKeyRow.__table__.c
        fits_tokens = or_(c.budget_tokens.is_(None), c.budget_used + tokens <= c.budget_tokens)
        fits_cost = or_(c.budget_micro_usd.is_(None), c.spent_micro_usd + micro_usd <= c.budget_micro_usd)
        async with self._db.sessions() as session, session.begin():
            result = await session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, fits_tokens, fits_cost)
                .values(budget_used=c.budget_used + tokens, spent_micro_usd=c.spent_micro_usd + micro_usd)
                .returning(c.budget_used, c.spent_micro_usd)
            )
            row = result.first()
        return None if row is None else (int(row[0]), int(row[1]))

    async def give_back(self, key_id: str, tokens: int, micro_usd: int) -> None:
        """Correct what the key has used once the real counts are known (may be negative)."""
        if tokens or micro_usd:
            c = ApiKeyRow.__table__.c
            async with self._db.sessions() as session, session.begin():
                await session.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.id == key_id)
                    .values(budget_used=c.budget_used - tokens, spent_micro_usd=c.spent_micro_usd - micro_usd)
                )
