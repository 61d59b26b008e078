"""A project's retention of its data, on the fake engines: what is older than `retention_days` goes
(with what hangs off it), newer data and other projects' data stay."""

from __future__ import annotations

import time

import pytest

from homeport.errors import NotFound
from homeport.protocol.assistants import ThreadCreate
from homeport.protocol.vector_stores import VectorStoreCreate
from homeport.services.platform.usage import UsageEvent

pytestmark = pytest.mark.anyio


async def _chunks(data: bytes):  # -> AsyncIterator[bytes]
    yield data


async def test_retention_deletes_a_projects_old_data_of_every_kind(fake_app) -> None:
    state = fake_app.state
    projects, files, stores, assistants = state.projects, state.files, state.vector_stores, state.assistants
    brief = await projects.create("brief")
    await projects.update(brief.id, retention_days=7)
    other = await projects.create("other")  # no retention

    def make(project_id: str):  # -> coroutine of the ids made
        async def go() -> dict[str, str]:
            file = await files.create(project_id, "a.txt", "user_data", _chunks(b"hello"))
            store = await stores.create(project_id, VectorStoreCreate(name="s"))
            thread = await assistants.create_thread(project_id, ThreadCreate())
            for _ in range(3):
                state.usage.record(UsageEvent("embeddings", project_id, None, "fake-embed", "/v1/embeddings", 200,
                                              3, 0, 0, 1, 0, 0))  # fmt: skip
            return {"file": file.id, "store": store.id, "thread": thread["id"]}

        return go()

    old, spared = await make(brief.id), await make(other.id)
    await state.usage.flush()
    data = state.project_data
    assert await data.prune() == {}  # nothing is a week old yet
    pruned = await data.prune(now=time.time() + 8 * 86400)
    assert pruned == {"files": 1, "vector_stores": 1, "threads": 1, "usage_records": 3}
    with pytest.raises(NotFound):
        await files.get(brief.id, old["file"])
    with pytest.raises(NotFound):
        await stores.retrieve(brief.id, old["store"])
    with pytest.raises(NotFound):
        await assistants.docs.get("thread", brief.id, old["thread"])
    assert (await files.get(other.id, spared["file"])).id == spared["file"]  # no retention set: kept
    assert (await stores.retrieve(other.id, spared["store"])).id == spared["store"]


async def test_audit_entries_are_append_only_in_the_database(db) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from homeport.services.platform.audit import CLI, AuditLog, AuditQuery

    audit = AuditLog(db)
    await audit.record("project.created", CLI, "proj_1", {"data": {"name": "a"}}, project=("proj_1", "a"))
    await audit.record("project.archived", CLI, "proj_1", None, project=("proj_1", "a"))
    entries, more = await audit.list(AuditQuery(event_types=("project.created",)))
    assert [e["type"] for e in entries] == ["project.created"] and not more
    for statement in ("UPDATE audit_logs SET type = 'x'", "DELETE FROM audit_logs"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.sessions() as session, session.begin():
                await session.execute(text(statement))
    assert len((await audit.list(AuditQuery()))[0]) == 2
