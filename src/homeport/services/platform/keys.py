"""API keys: created with a secret shown once, stored as a SHA-256 hash, revocable.

Secrets carry 190 bits of randomness, so a fast hash is the right tool (no password
stretching needed); lookups go through the hash index — timing can reveal at most something
about a SHA-256 digest, which says nothing usable about a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from ...ids import sortable_id
from ...storage.db import Database
from ...storage.tables import ApiKeyRow, ProjectRow, RateLimitRow
from .limit_rows import LimitStore, limit_of
from .limits import Limit
from .projects import Project, ProjectStore, project_of

__all__ = ["ApiKey", "KeyStore", "hash_secret", "redact"]

_SECRET_PREFIX = "sk-hp-"
_ADMIN_PREFIX = "sk-hp-admin-"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    redacted: str
    created_at: int
    revoked_at: int | None
    project_id: str | None = None
    budget_tokens: int | None = None
    """Tokens this key may use in all (None: no budget)."""
    expires_at: int | None = None
    models: tuple[str, ...] | None = None
    """The model ids (or aliases) this key may use; None: all."""
    read_only: bool = False
    """Only reads (GET): listing models, reading usage."""
    budget_micro_usd: int | None = None
    """Spend this key may cause, in millionths of a dollar, priced by the models' price table."""
    admin: bool = False
    """Admin keys manage projects, keys, limits and read all usage; they do not call models."""
    last_used_at: int | None = None
    limits: tuple[Limit, ...] = ()
    """The key's own rate limits and its project's (loaded by `verify`)."""
    project: Project | None = None
    endpoints: tuple[str, ...] | None = None
    """The endpoint families (api/families.py) this key may call; None: all."""
    budget_used: int = 0
    """Tokens taken from the budget so far (as last read from the database)."""
    spent_micro_usd: int = 0

    @property
    def budgeted(self) -> bool:
        return self.budget_tokens is not None or self.budget_micro_usd is not None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    def limit(self, model: str = "*") -> Limit | None:
        """The key's own limit on `model` (not its project's)."""
        return next((x for x in self.limits if x.owner == "key" and x.model == model), None)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def key_scopes(key: ApiKey) -> list[str]:
    """What a key may do, as the audit log writes it (`scopes`)."""
    if key.admin:
        return ["admin"]
    scopes = list(key.endpoints) if key.endpoints else ["all"]
    scopes += ["read_only"] if key.read_only else []
    return scopes + [f"model:{m}" for m in key.models or ()]


def redact(secret: str) -> str:
    """What is shown of a secret: its prefix and last four characters."""
    return f"{secret[:10]}...{secret[-4:]}" if len(secret) > 14 else "*" * len(secret)


def _key(row: ApiKeyRow, limits: tuple[Limit, ...] = (), project: Project | None = None) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        redacted=row.redacted,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        project_id=row.project_id,
        budget_tokens=row.budget_tokens,
        expires_at=row.expires_at,
        models=_split(row.models),
        read_only=row.read_only,
        budget_micro_usd=row.budget_micro_usd,
        admin=row.admin,
        last_used_at=row.last_used_at,
        limits=limits,
        project=project,
        endpoints=_split(row.endpoints),
        budget_used=row.budget_used or 0,
        spent_micro_usd=row.spent_micro_usd or 0,
    )


def _split(names: str | None) -> tuple[str, ...] | None:
    return tuple(names.split(",")) if names else None


class KeyStore:
    def __init__(self, db: Database, projects: ProjectStore, limits: LimitStore, cache_s: float = 0.0) -> None:
        self.db, self._projects, self._limits = db, projects, limits
        # Valid keys are remembered for `cache_s` (a revocation elsewhere takes that long to
        # reach this process); unknown secrets are always looked up, so new keys work at once.
        self._cache_s = cache_s
        self._cache: dict[str, tuple[ApiKey, float]] = {}
        # One lookup per secret at a time: a burst of requests whose key's entry has expired waits
        # for one (each lookup costs the event loop about 2 ms of SQLAlchemy and aiosqlite hand-offs).
        self._lookups: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def create(
        self,
        name: str,
        secret: str | None = None,
        *,
        project: str | None = None,
        project_id: str | None = None,
        limits: Limit | None = None,
        budget_tokens: int | None = None,
        budget_micro_usd: int | None = None,
        expires_at: int | None = None,
        models: list[str] | None = None,
        read_only: bool = False,
        admin: bool = False,
        endpoints: list[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret is available).

        `project` names a project (created if new); `project_id` gives one by id. `limits` are the
        key's own per-minute/per-day limits on every model (its owner fields are filled in here).
        """
        secret = secret or (_ADMIN_PREFIX if admin else _SECRET_PREFIX) + secrets.token_urlsafe(24)
        if project:
            project_id = await self._projects.ensure(project)
        row = ApiKeyRow(
            id=sortable_id("key_"),
            name=name,
            redacted=redact(secret),
            secret_hash=hash_secret(secret),
            created_at=int(time.time()),
            project_id=project_id,
            budget_tokens=budget_tokens,
            budget_used=0,
            budget_micro_usd=budget_micro_usd,
            spent_micro_usd=0,
            expires_at=expires_at,
            models=",".join(models) if models else None,
            read_only=read_only,
            admin=admin,
            endpoints=",".join(endpoints) if endpoints else None,
        )
        async with self.db.sessions() as session, session.begin():
            session.add(row)
        own: tuple[Limit, ...] = ()
        if limits is not None and any(v is not None for v in (limits.rpm, limits.tpm, limits.rpd, limits.tpd)):
            own = (await self._limits.set(replace(limits, owner="key", owner_id=row.id, model="*")),)
        return _key(row, own), secret

    async def ensure(self, secret: str, name: str) -> ApiKey:
        """The key with this secret, created if missing (seeding HOMEPORT_API_KEY)."""
        async with self.db.sessions() as session:
            row = await session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_hash == hash_secret(secret)))
        if row is not None:
            return _key(row)
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
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = self._lookups[digest] = asyncio.ensure_future(self._look_up(digest))
            lookup.add_done_callback(lambda done: self._looked_up(digest, done))
        return await asyncio.shield(lookup)  # a caller that gives up leaves it to the others

    def _looked_up(self, digest: str, lookup: asyncio.Future[ApiKey | None]) -> None:
        self._lookups.pop(digest, None)
        if not lookup.cancelled():
            lookup.exception()  # retrieved: raised to each caller still waiting, if any

    async def _look_up(self, digest: str) -> ApiKey | None:
        key = await self._load(ApiKeyRow.secret_hash == digest)
        if key is None:
            self._cache.pop(digest, None)
            return None
        if self._cache_s > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (key, time.monotonic() + self._cache_s)
        return key

    async def load(self, key_id: str) -> ApiKey | None:
        """A live key by id, with its project and limits (as `verify` gives it); None if revoked."""
        return await self._load(ApiKeyRow.id == key_id)

    async def _load(self, where: Any) -> ApiKey | None:
        async with self.db.sessions() as session:
            found = (
                await session.execute(
                    select(ApiKeyRow, ProjectRow)
                    .outerjoin(ProjectRow, ProjectRow.id == ApiKeyRow.project_id)
                    .where(where)
                )
            ).first()
            row, project = found if found is not None else (None, None)
            if row is None or row.revoked_at is not None:
                return None
            owners = {row.id: "key"} | ({row.project_id: "project"} if row.project_id else {})
            limits = await session.scalars(select(RateLimitRow).where(RateLimitRow.owner_id.in_(owners)))
            own = tuple(limit_of(r, owners[r.owner_id]) for r in limits)
        return _key(row, own, project_of(project) if project is not None else None)

    async def list_keys(
        self, *, project_id: str | None = None, admin: bool | None = None, active: bool = False
    ) -> list[ApiKey]:
        """Keys (oldest first) with their own limits; optionally of one project, of one kind, unrevoked."""
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if project_id is not None:
            query = query.where(ApiKeyRow.project_id == project_id)
        if admin is not None:
            query = query.where(ApiKeyRow.admin.is_(admin))
        if active:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        async with self.db.sessions() as session:
            rows = list(await session.scalars(query))
            limits = await session.scalars(select(RateLimitRow).where(RateLimitRow.owner_id.in_([r.id for r in rows])))
            by_owner: dict[str, list[Limit]] = {}
            for limit in limits:
                by_owner.setdefault(limit.owner_id, []).append(limit_of(limit, "key"))
        return [_key(r, tuple(by_owner.get(r.id, ()))) for r in rows]

    async def get_key(self, key_id: str) -> ApiKey | None:
        async with self.db.sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
        return None if row is None else _key(row)

    async def count_active(self) -> int:
        return len(await self.list_keys(active=True))

    async def touch(self, used: dict[str, int]) -> None:
        """Record when keys were last used ({key id: unix time}); called with batches of usage."""
        async with self.db.sessions() as session, session.begin():
            for key_id, ts in used.items():
                await session.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.id == key_id, or_(ApiKeyRow.last_used_at.is_(None), ApiKeyRow.last_used_at < ts))
                    .values(last_used_at=ts)
                )

    async def revoke(self, key_id: str) -> bool:
        async with self.db.sessions() as session, session.begin():
            result = await session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=int(time.time()))
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
