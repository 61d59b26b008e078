"""API keys: hashed at rest, constant-time checked, revocable; projects and rate limits; on
SQLite and PostgreSQL (the `db` fixture runs each test on both)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from homeport.errors import Conflict
from homeport.services.platform.accounts import Accounts
from homeport.services.platform.keys import hash_secret
from homeport.services.platform.limits import Limit
from homeport.storage.db import Database
from homeport.storage.tables import ApiKeyRow

pytestmark = pytest.mark.anyio


async def test_keys_are_hashed_checked_and_revoked(db: Database) -> None:
    await db.migrate()  # idempotent
    store = Accounts.open(db).keys
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


async def test_a_burst_of_requests_with_one_key_looks_it_up_once(db: Database, monkeypatch) -> None:
    """Requests arriving together whose key is not cached share one lookup; one that gives up
    leaves it to the others, and a failed lookup fails its callers only."""
    store = Accounts.open(db, key_cache_s=60).keys
    key, secret = await store.create("burst")
    loads: list[object] = []
    load, gate = store._load, asyncio.Event()

    async def counted(where):  # type: ignore[no-untyped-def]
        loads.append(where)
        await gate.wait()  # every caller is waiting by now
        return await load(where)

    monkeypatch.setattr(store, "_load", counted)
    callers = [asyncio.create_task(store.verify(secret)) for _ in range(8)]
    while not loads:
        await asyncio.sleep(0)
    callers[0].cancel()
    gate.set()
    assert await asyncio.gather(*callers[1:]) == [key] * 7 and len(loads) == 1
    assert await store.verify(secret) == key and len(loads) == 1  # cached

    async def failing(where):  # type: ignore[no-untyped-def]
        loads.append(where)
        raise ConnectionError("database restarting")

    monkeypatch.setattr(store, "_load", failing)
    failed = await asyncio.gather(*(store.verify("sk-other") for _ in range(3)), return_exceptions=True)
    assert [type(f) for f in failed] == [ConnectionError] * 3 and len(loads) == 2
    monkeypatch.setattr(store, "_load", load)
    assert await store.verify("sk-other") is None  # the next call looks again


async def test_limits_of_key_and_project_load_with_the_key(db: Database) -> None:
    accounts = Accounts.open(db)
    store, limits = accounts.keys, accounts.limits
    key, secret = await store.create("bob", project="web", limits=Limit("key", "", "*", rpm=5, tpd=1000))
    project_id = key.project_id
    assert project_id is not None
    await limits.set(Limit("project", project_id, "smollm2-135m-instruct", rpm=3, rpd=100))
    await limits.set(Limit("project", project_id, "*", tpm=9000))
    verified = await store.verify(secret)
    assert verified is not None and verified.project is not None and verified.project.name == "web"
    assert set(verified.limits) == {
        Limit("key", key.id, "*", rpm=5, tpd=1000),
        Limit("project", project_id, "smollm2-135m-instruct", rpm=3, rpd=100),
        Limit("project", project_id, "*", tpm=9000),
    }
    names = sorted(s.name for x in verified.limits if x.applies_to("all-minilm-l6-v2") for s in x.scopes())
    assert names == [f"key:{key.id}:*:1d", f"key:{key.id}:*:1m", f"project:{project_id}:*:1m"]
    # Changing a limit replaces it; giving none removes it.
    await limits.set(Limit("project", project_id, "*", rpm=1))
    await limits.set(Limit("project", project_id, "smollm2-135m-instruct"))
    assert await limits.of("project", project_id) == [Limit("project", project_id, "*", rpm=1)]


async def test_projects_archive_rename_and_keys_last_use(db: Database) -> None:
    accounts = Accounts.open(db)
    store, projects = accounts.keys, accounts.projects
    project = await projects.create("alpha")
    with pytest.raises(Conflict):
        await projects.create("alpha")
    assert await projects.ensure("alpha") == project.id
    key, secret = await store.create("k", project_id=project.id)
    await projects.update(project.id, name="beta", archived=True, log_prompts=True)
    verified = await store.verify(secret)
    assert verified is not None and verified.project is not None
    assert (verified.project.name, verified.project.log_prompts) == ("beta", True)
    assert verified.project.archived_at is not None
    assert [p.id for p in await projects.list(include_archived=False)] == []
    await store.touch({key.id: 1700000000})
    await store.touch({key.id: 1600000000})  # an older batch never moves it back
    found = await store.get_key(key.id)
    assert found is not None and found.last_used_at == 1700000000
    admin, admin_secret = await store.create("root", admin=True)
    assert admin_secret.startswith("sk-hp-admin-") and admin.admin
    assert [k.id for k in await store.list_keys(admin=True)] == [admin.id]
