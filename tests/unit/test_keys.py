"""API keys: hashed at rest, constant-time checked, revocable; on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from sqlalchemy import select

from homeport.services.keys import KeyStore, hash_secret
from homeport.storage.db import Database
from homeport.storage.tables import ApiKeyRow


async def _exercise(db: Database) -> None:
    await db.migrate()
    await db.migrate()  # idempotent
    store = KeyStore(db)
    key, secret = await store.create("alice")
    assert secret.startswith("sk-hp-") and len(secret) > 30
    assert await store.verify(secret) == key
    assert await store.verify(secret + "x") is None
    async with db.sessions() as session:
        row = await session.scalar(select(ApiKeyRow).where(ApiKeyRow.id == key.id))
    assert row is not None and row.secret_hash == hash_secret(secret) and secret not in row.redacted
    assert [k.id for k in await store.list_keys()] == [key.id]
    assert await store.revoke(key.id) and not await store.revoke(key.id)
    assert await store.verify(secret) is None
    seeded = await store.ensure("sk-dev", "env")
    assert await store.ensure("sk-dev", "env") == seeded
    assert await store.verify("sk-dev") == seeded


@pytest.mark.anyio
async def test_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    try:
        await _exercise(db)
    finally:
        await db.close()


@pytest.mark.anyio
async def test_postgresql() -> None:
    asyncpg = pytest.importorskip("asyncpg")
    try:
        admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test", timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    name = f"homeport_keys_{secrets.token_hex(4)}"
    await admin.execute(f"CREATE DATABASE {name}")
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
    try:
        await _exercise(db)
    finally:
        await db.close()
        await admin.execute(f"DROP DATABASE {name}")
        await admin.close()
