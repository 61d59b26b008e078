"""Fixtures for unit tests: a fresh, migrated database on SQLite and on PostgreSQL; the whole app
on the fake engines, started in process (its services on `app.state`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from homeport.api.app import create_app
from homeport.settings import ModelConfig, Settings
from homeport.storage.db import Database
from tests.clusters import fresh_database

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
    try:
        async with fresh_database(admin, "postgresql+asyncpg://postgres@127.0.0.1:5432", "homeport_unit") as database:
            yield database
    finally:
        await admin.close()


FAKE_KEY = "sk-unit"


@pytest.fixture
async def fake_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    """Homeport on the fake engines (`fake-chat`, `fake-embed`), started, models loaded."""
    settings = Settings(
        data_dir=tmp_path,
        api_key=FAKE_KEY,
        models=[
            ModelConfig(id="fake-chat", version="v1", kind="chat", backend="fake"),
            ModelConfig(id="fake-embed", version="v1", kind="embedding", backend="fake"),
        ],
        aliases={"gpt-4o-mini": "fake-chat"},
        vector_store_model="fake-embed",
        run_heartbeat_s=30,
    )
    app = create_app(settings, progress=lambda *a: None)
    async with app.router.lifespan_context(app):
        await app.state.registry.ready.wait()
        yield app
