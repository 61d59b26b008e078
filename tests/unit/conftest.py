"""Fixtures for unit tests: a fresh, migrated database on SQLite and on PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from homeport.storage.db import Database

PG = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
        await database.migrate()
        yield database
        await database.close()
        return
    asyncpg = pytest.importorskip("asyncpg")
    try:
        admin = await asyncpg.connect(f"{PG}/test", timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    name = f"homeport_unit_{secrets.token_hex(4)}"
    await admin.execute(f"CREATE DATABASE {name}")
    database = Database(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
    try:
        await database.migrate()
        yield database
    finally:
        await database.close()
        await admin.execute(f"DROP DATABASE {name}")
        await admin.close()
