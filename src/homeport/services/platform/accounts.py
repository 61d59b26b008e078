"""Keys, projects, their rate-limit rows and key budgets over one database, and how a process
prepares that database when it starts (the server and the CLI alike)."""

from __future__ import annotations

from dataclasses import dataclass

from ...storage.db import Database
from .budgets import Budgets
from .keys import KeyStore
from .limit_rows import LimitStore
from .projects import ProjectStore

__all__ = ["Accounts", "prepare"]


@dataclass(frozen=True)
class Accounts:
    db: Database
    keys: KeyStore
    projects: ProjectStore
    limits: LimitStore
    budgets: Budgets

    @classmethod
    def open(cls, db: Database, key_cache_s: float = 0.0) -> Accounts:
        projects, limits = ProjectStore(db), LimitStore(db)
        return cls(db, KeyStore(db, projects, limits, key_cache_s), projects, limits, Budgets(db))


async def prepare(accounts: Accounts, api_key: str | None, *, first_key: bool) -> str | None:
    """Bring the schema up to date, then make sure the configured key (HOMEPORT_API_KEY) exists;
    with `first_key`, on a fresh install with no key configured, create one and return its secret
    (shown once)."""
    await accounts.db.migrate()
    keys = accounts.keys
    if api_key is not None:
        await keys.ensure(api_key, name="HOMEPORT_API_KEY")
        return None
    if first_key and await keys.count_active() == 0:
        return (await keys.create("default"))[1]
    return None
