"""API keys: created with a secret shown once, stored as a SHA-256 hash, revocable.

Secrets carry 190 bits of randomness, so a fast hash is the right tool (no password
stretching needed); lookups go through the hash index — timing can reveal at most something
about a SHA-256 digest, which says nothing usable about a secret.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict
from ..ids import new_id, sortable_id
from ..storage.db import Database
from ..storage.tables import ApiKeyRow, ProjectRow, RateLimitRow
from .limits import Limit

__all__ = ["ApiKey", "KeyStore", "Project", "ENDPOINT_FAMILIES", "endpoint_family", "hash_secret"]

ENDPOINT_FAMILIES = {
    "models": ("/v1/models",),
    "chat": ("/v1/chat/",),
    "completions": ("/v1/completions",),
    "embeddings": ("/v1/embeddings",),
    "usage": ("/v1/organization/usage/", "/v1/organization/costs"),
    "files": ("/v1/files", "/v1/uploads"),
    "vector_stores": ("/v1/vector_stores",),
    "assistants": ("/v1/assistants", "/v1/threads"),
}
"""What a key's `endpoints` scope can name, and the paths each family covers."""


def endpoint_family(path: str) -> str | None:
    return next((f for f, prefixes in ENDPOINT_FAMILIES.items() if path.startswith(prefixes)), None)


_SECRET_PREFIX = "sk-hp-"
_ADMIN_PREFIX = "sk-hp-admin-"


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    created_at: int
    archived_at: int | None = None
    log_prompts: bool = False
    """Whether the project's prompts and outputs are logged (off unless the project opts in)."""


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
    """The endpoint families (ENDPOINT_FAMILIES) this key may call; None: all."""

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


def _redact(secret: str) -> str:
    return f"{secret[:10]}...{secret[-4:]}"


def _key(row: ApiKeyRow, limits: tuple[Limit, ...] = (), project: Project | None = None) -> ApiKey:
    return ApiKey(
        row.id, row.name, row.redacted, row.created_at, row.revoked_at, row.project_id, row.budget_tokens,
        row.expires_at, tuple(row.models.split(",")) if row.models else None, row.read_only, row.budget_micro_usd,
        row.admin, row.last_used_at, limits, project, tuple(row.endpoints.split(",")) if row.endpoints else None,
    )  # fmt: skip


def _project(row: ProjectRow) -> Project:
    return Project(row.id, row.name, row.created_at, row.archived_at, row.log_prompts)


def _limit(row: RateLimitRow, owner: str) -> Limit:
    return Limit(
        owner, row.owner_id, row.model, row.max_requests_per_1_minute, row.max_tokens_per_1_minute,
        row.max_requests_per_1_day, row.max_tokens_per_1_day,
    )  # fmt: skip


class KeyStore:
    def __init__(self, db: Database, cache_s: float = 0.0) -> None:
        self.db = db
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
            project_id = await self.ensure_project(project)
        row = ApiKeyRow(
            id=sortable_id("key_"),
            name=name,
            redacted=_redact(secret),
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
            own = (await self.set_limits(replace(limits, owner="key", owner_id=row.id, model="*")),)
        return _key(row, own), secret

    async def ensure_project(self, name: str) -> str:
        """The id of the project with this name, created if missing."""
        async with self.db.sessions() as session:
            found = await session.scalar(select(ProjectRow.id).where(ProjectRow.name == name))
        if found is not None:
            return found
        try:
            return (await self.create_project(name)).id
        except Conflict:  # created meanwhile by another process
            async with self.db.sessions() as session:
                found = await session.scalar(select(ProjectRow.id).where(ProjectRow.name == name))
            if found is None:
                raise
            return found

    async def create_project(self, name: str) -> Project:
        row = ProjectRow(id=sortable_id("proj_"), name=name, created_at=int(time.time()))
        try:
            async with self.db.sessions() as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise Conflict(f"A project named '{name}' already exists.", param="name") from exc
        return _project(row)

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
            own = tuple(_limit(r, owners[r.owner_id]) for r in limits)
        return _key(row, own, _project(project) if project is not None else None)

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
                by_owner.setdefault(limit.owner_id, []).append(_limit(limit, "key"))
        return [_key(r, tuple(by_owner.get(r.id, ()))) for r in rows]

    async def get_key(self, key_id: str) -> ApiKey | None:
        async with self.db.sessions() as session:
            row = await session.get(ApiKeyRow, key_id)
        return None if row is None else _key(row)

    async def count_active(self) -> int:
        return len(await self.list_keys(active=True))

    async def set_limits(self, limit: Limit) -> Limit:
        """Set the limits of one owner on one model (all None: remove them). Returns what is set."""
        c = RateLimitRow.__table__.c
        where = (c.owner_id == limit.owner_id, c.model == limit.model)
        values = {
            "max_requests_per_1_minute": limit.rpm, "max_tokens_per_1_minute": limit.tpm,
            "max_requests_per_1_day": limit.rpd, "max_tokens_per_1_day": limit.tpd,
        }  # fmt: skip
        async with self.db.sessions() as session, session.begin():
            if all(v is None for v in values.values()):
                await session.execute(delete(RateLimitRow).where(*where))
                return limit
            result = await session.execute(update(RateLimitRow).where(*where).values(**values))
            if not result.rowcount:  # type: ignore[attr-defined]
                session.add(RateLimitRow(id=new_id("rl_", 24), owner_id=limit.owner_id, model=limit.model, **values))
        return limit

    async def limits_of(self, owner: str, owner_id: str) -> list[Limit]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(RateLimitRow).where(RateLimitRow.owner_id == owner_id).order_by(RateLimitRow.model)
            )
            return [_limit(r, owner) for r in rows]

    async def project(self, project_id: str) -> Project | None:
        async with self.db.sessions() as session:
            row = await session.get(ProjectRow, project_id)
        return None if row is None else _project(row)

    async def project_named(self, name: str) -> Project | None:
        async with self.db.sessions() as session:
            row = await session.scalar(select(ProjectRow).where(ProjectRow.name == name))
        return None if row is None else _project(row)

    async def projects(self, *, include_archived: bool = True) -> list[Project]:
        query = select(ProjectRow).order_by(ProjectRow.created_at, ProjectRow.id)
        if not include_archived:
            query = query.where(ProjectRow.archived_at.is_(None))
        async with self.db.sessions() as session:
            return [_project(r) for r in await session.scalars(query)]

    async def update_project(
        self, project_id: str, *, name: str | None = None, archived: bool | None = None, log_prompts: bool | None = None
    ) -> Project | None:
        values: dict[str, object] = {}
        if name is not None:
            values["name"] = name
        if archived is not None:
            values["archived_at"] = int(time.time()) if archived else None
        if log_prompts is not None:
            values["log_prompts"] = log_prompts
        if values:
            try:
                async with self.db.sessions() as session, session.begin():
                    await session.execute(update(ProjectRow).where(ProjectRow.id == project_id).values(**values))
            except IntegrityError as exc:
                raise Conflict(f"A project named '{name}' already exists.", param="name") from exc
        return await self.project(project_id)

    async def touch(self, used: dict[str, int]) -> None:
        """Record when keys were last used ({key id: unix time}); called with batches of usage."""
        async with self.db.sessions() as session, session.begin():
            for key_id, ts in used.items():
                await session.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.id == key_id, or_(ApiKeyRow.last_used_at.is_(None), ApiKeyRow.last_used_at < ts))
                    .values(last_used_at=ts)
                )

    async def take_budget(self, key_id: str, tokens: int, micro_usd: int) -> tuple[int, int] | None:
        """Add `tokens` and `micro_usd` to what the key has used if both stay within its budgets:
        one conditional UPDATE, atomic on SQLite and PostgreSQL alike, so concurrent requests on
        any number of replicas can never overshoot. Returns the new (tokens, micro-USD) totals,
        or None when the request would not fit."""
        c = ApiKeyRow.__table__.c
        fits_tokens = or_(c.budget_tokens.is_(None), c.budget_used + tokens <= c.budget_tokens)
        fits_cost = or_(c.budget_micro_usd.is_(None), c.spent_micro_usd + micro_usd <= c.budget_micro_usd)
        async with self.db.sessions() as session, session.begin():
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
            async with self.db.sessions() as session, session.begin():
                await session.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.id == key_id)
                    .values(budget_used=c.budget_used - tokens, spent_micro_usd=c.spent_micro_usd - micro_usd)
                )

    async def revoke(self, key_id: str) -> bool:
        async with self.db.sessions() as session, session.begin():
            result = await session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=int(time.time()))
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
