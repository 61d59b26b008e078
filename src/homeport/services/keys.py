"""API keys: created with a secret shown once, stored as a SHA-256 hash, revocable.

Secrets carry 190 bits of randomness, so a fast hash is the right tool (no password
stretching needed); lookups go through the hash index and the final comparison is
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, replace

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from ..ids import new_id
from ..storage.db import Database
from ..storage.tables import ApiKeyRow, ProjectRow

__all__ = ["ApiKey", "KeyStore", "hash_secret"]

_SECRET_PREFIX = "sk-hp-"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    redacted: str
    created_at: int
    revoked_at: int | None
    project_id: str | None = None
    rpm: int | None = None
    """Requests per minute this key may make (None: unlimited)."""
    tpm: int | None = None
    """Tokens per minute (prompt + max output reserved up front, settled after)."""
    budget_tokens: int | None = None
    """Tokens this key may use in all (None: no budget)."""
    expires_at: int | None = None
    models: tuple[str, ...] | None = None
    """The model ids (or aliases) this key may use; None: all."""
    read_only: bool = False
    """Only reads (GET): listing models, reading usage."""
    project_rpm: int | None = None
    """The key's project's limits, shared by all its keys."""
    project_tpm: int | None = None
    budget_micro_usd: int | None = None
    """Spend this key may cause, in millionths of a dollar, priced by the models' price table."""

    @property
    def budgeted(self) -> bool:
        return self.budget_tokens is not None or self.budget_micro_usd is not None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _redact(secret: str) -> str:
    return f"{secret[:10]}...{secret[-4:]}"


def _from_row(row: ApiKeyRow, project: ProjectRow | None = None) -> ApiKey:
    key = ApiKey(
        row.id, row.name, row.redacted, row.created_at, row.revoked_at, row.project_id, row.rpm, row.tpm,
        row.budget_tokens, row.expires_at, tuple(row.models.split(",")) if row.models else None, row.read_only,
    )  # fmt: skip
    key = replace(key, budget_micro_usd=row.budget_micro_usd)
    return replace(key, project_rpm=project.rpm, project_tpm=project.tpm) if project else key


class KeyStore:
    def __init__(self, db: Database, cache_s: float = 0.0) -> None:
        self._db = db
        # Valid keys are remembered for `cache_s` (a revocation elsewhere takes that long to
        # reach this process); unknown secrets are always looked up, so new keys work at once.
        self._cache_s = cache_s
        self._cache: dict[str, tuple[ApiKey, float]] = {}

    async def create(
        self,
        name: str,
        secret: str | None = None,
        *,
        project: str | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        budget_tokens: int | None = None,
        budget_micro_usd: int | None = None,
        expires_at: int | None = None,
        models: list[str] | None = None,
        read_only: bool = False,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret is available)."""
        secret = secret or _SECRET_PREFIX + secrets.token_urlsafe(24)
        project_id = await self.ensure_project(project) if project else None
        row = ApiKeyRow(
            id=new_id("key_", 24),
            name=name,
            redacted=_redact(secret),
            secret_hash=hash_secret(secret),
            created_at=int(time.time()),
            project_id=project_id,
            rpm=rpm,
            tpm=tpm,
            budget_tokens=budget_tokens,
            budget_used=0,
            budget_micro_usd=budget_micro_usd,
            spent_micro_usd=0,
            expires_at=expires_at,
            models=",".join(models) if models else None,
            read_only=read_only,
        )
        async with self._db.sessions() as session, session.begin():
            session.add(row)
        return _from_row(row), secret

    async def ensure_project(self, name: str) -> str:
        """The id of the project with this name, created if missing."""
        async with self._db.sessions() as session:
            found = await session.scalar(select(ProjectRow.id).where(ProjectRow.name == name))
        if found is not None:
            return found
        row = ProjectRow(id=new_id("proj_", 24), name=name, created_at=int(time.time()))
        try:
            async with self._db.sessions() as session, session.begin():
                session.add(row)
        except IntegrityError:  # created meanwhile by another process
            async with self._db.sessions() as session:
                return (await session.scalar(select(ProjectRow.id).where(ProjectRow.name == name))) or row.id
        return row.id

    async def ensure(self, secret: str, name: str) -> ApiKey:
        """The key with this secret, created if missing (seeding HOMEPORT_API_KEY)."""
        async with self._db.sessions() as session:
            row = await session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_hash == hash_secret(secret)))
        if row is not None:
            return _from_row(row)
        try:
            key, _ = await self.create(name, secret)
        except IntegrityError:  # another replica seeded it at the same moment
            found = await self.verify(secret)
            if found is None:
                raise
            return found
        return key

    async def verify(self, secret: str) -> ApiKey | None:
        digest = hash_secret(secret)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        async with self._db.sessions() as session:
            found = (
                await session.execute(
                    select(ApiKeyRow, ProjectRow)
                    .outerjoin(ProjectRow, ProjectRow.id == ApiKeyRow.project_id)
                    .where(ApiKeyRow.secret_hash == digest)
                )
            ).first()
        row, project = found if found is not None else (None, None)
        if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, digest):
            self._cache.pop(digest, None)
            return None
        key = _from_row(row, project)
        if self._cache_s > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (key, time.monotonic() + self._cache_s)
        return key

    async def list_keys(self) -> list[ApiKey]:
        async with self._db.sessions() as session:
            rows = await session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id))
            return [_from_row(r) for r in rows]

    async def count_active(self) -> int:
        return sum(1 for k in await self.list_keys() if k.revoked_at is None)

    async def set_project_limits(self, name: str, rpm: int | None, tpm: int | None) -> str:
        """Create the project if needed and set its per-minute limits; returns its id."""
        project_id = await self.ensure_project(name)
        async with self._db.sessions() as session, session.begin():
            await session.execute(update(ProjectRow).where(ProjectRow.id == project_id).values(rpm=rpm, tpm=tpm))
        return project_id

    async def projects(self) -> list[tuple[str, str, int | None, int | None]]:
        """(id, name, rpm, tpm) of every project."""
        async with self._db.sessions() as session:
            rows = await session.scalars(select(ProjectRow).order_by(ProjectRow.created_at, ProjectRow.id))
            return [(r.id, r.name, r.rpm, r.tpm) for r in rows]

    async def take_budget(self, key_id: str, tokens: int, micro_usd: int) -> tuple[int, int] | None:
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

    async def give_back_budget(self, key_id: str, tokens: int, micro_usd: int) -> None:
        """Correct what the key has used once the real counts are known (may be negative)."""
        if tokens or micro_usd:
            c = ApiKeyRow.__table__.c
            async with self._db.sessions() as session, session.begin():
                await session.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.id == key_id)
                    .values(budget_used=c.budget_used - tokens, spent_micro_usd=c.spent_micro_usd - micro_usd)
                )

    async def revoke(self, key_id: str) -> bool:
        async with self._db.sessions() as session, session.begin():
            result = await session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=int(time.time()))
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
