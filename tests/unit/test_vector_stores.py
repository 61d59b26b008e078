"""Vector stores on the fake engines (services/retrieval/): ingestion as a queued job, search with
filters and ranking, detaching, batches, and resuming ingestion after a restart — fast, no HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest

from homeport.protocol.vector_stores import (
    ComparisonFilter,
    CompoundFilter,
    RankingOptions,
    VectorStoreCreate,
    VectorStoreSearch,
)
from homeport.services.retrieval.search import matches
from homeport.services.retrieval.stores import FileSettings

pytestmark = pytest.mark.anyio

DEADLINE_S = 60  # generous: these wait on conditions, never on the machine's speed
TEXTS = {
    "trains.txt": "The night train from Vienna to Venice leaves at 21:40 and arrives at 08:50.",
    "bread.md": "# Bread\nKnead the dough for ten minutes, let it rise for an hour, bake at 230 degrees.",
}


async def _upload(app, name: str, text: str):  # type: ignore[no-untyped-def]
    async def body():  # type: ignore[no-untyped-def]
        yield text.encode()

    return await app.state.files.create(None, name, "assistants", body())


async def _ingested(app, store_id: str, file_id: str) -> str:
    """The file's status once ingestion has finished with it."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        status = (await app.state.vector_stores.file(None, store_id, file_id)).status
        if status != "in_progress":
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"{file_id} still in progress")


async def test_files_are_ingested_by_the_job_worker_and_found(fake_app) -> None:
    service = fake_app.state.vector_stores
    files = [await _upload(fake_app, name, text) for name, text in TEXTS.items()]
    store = await service.create(None, VectorStoreCreate(name="docs", file_ids=[f.id for f in files]))
    assert store.file_counts.total == 2  # in progress or done already: the worker may be quick
    assert [await _ingested(fake_app, store.id, f.id) for f in files] == ["completed", "completed"]
    done = await service.retrieve(None, store.id)
    assert done.status == "completed" and done.file_counts.completed == 2 and done.usage_bytes > 100
    page = await service.search(None, store.id, VectorStoreSearch(query=TEXTS["trains.txt"]))
    assert page.data[0].filename == "trains.txt" and page.data[0].score == 1.0  # same text: cosine 1, top keyword
    assert all(r.score <= 1 for r in page.data)
    vectors_only = await service.search(None, store.id, VectorStoreSearch(query="x", ranking_options=RankingOptions(
        ranker="none", score_threshold=1.0)))  # fmt: skip
    assert vectors_only.data == []  # no chunk is that close to "x"
    content = await service.file_content(None, store.id, files[1].id)
    assert "Knead the dough" in "".join(c.text for c in content)


async def test_filters_narrow_the_search_to_matching_files(fake_app) -> None:
    service = fake_app.state.vector_stores
    store = await service.create(None, VectorStoreCreate(name="filtered"))
    trains, bread = [await _upload(fake_app, name, text) for name, text in TEXTS.items()]
    await service.attach(None, store.id, [trains.id], FileSettings(attributes={"kind": "timetable", "year": 2026}))
    await service.attach(None, store.id, [bread.id], FileSettings(attributes={"kind": "recipe", "year": 2024}))
    assert await _ingested(fake_app, store.id, trains.id) == await _ingested(fake_app, store.id, bread.id)
    # The fake embeds by hashing tokens: a query equal to a chunk's text is its nearest neighbour.
    query = TEXTS["trains.txt"]
    recent = ComparisonFilter(type="gte", key="year", value=2025)
    page = await service.search(None, store.id, VectorStoreSearch(query=query, filters=recent))
    assert [r.filename for r in page.data] == ["trains.txt"] and page.data[0].attributes["year"] == 2026
    neither = CompoundFilter(type="and", filters=[recent, ComparisonFilter(type="eq", key="kind", value="recipe")])
    assert (await service.search(None, store.id, VectorStoreSearch(query=query, filters=neither))).data == []
    await service.remove_file(None, store.id, trains.id)  # its chunks go; the file stays
    page = await service.search(None, store.id, VectorStoreSearch(query=query))
    assert "trains.txt" not in {r.filename for r in page.data}
    assert (await fake_app.state.files.get(None, trains.id)).id == trains.id


def test_filter_matching() -> None:
    attributes = {"kind": "recipe", "year": 2024, "vegan": True}
    assert matches(ComparisonFilter(type="in", key="kind", value=["recipe", "menu"]), attributes)
    assert matches(ComparisonFilter(type="ne", key="missing", value=1), attributes)
    assert not matches(ComparisonFilter(type="gt", key="kind", value=3), attributes)  # str vs int: no match
    either = CompoundFilter(type="or", filters=[ComparisonFilter(type="eq", key="vegan", value=False),
                                                ComparisonFilter(type="lt", key="year", value=2025)])  # fmt: skip
    assert matches(either, attributes)


async def test_an_unreadable_file_fails_and_a_cancelled_batch_stops(fake_app) -> None:
    service = fake_app.state.vector_stores
    binary = await _upload(fake_app, "notes.txt", "\x00\x01\x02" * 100)
    store = await service.create(None, VectorStoreCreate(file_ids=[binary.id]))
    assert await _ingested(fake_app, store.id, binary.id) == "failed"
    failed = await service.file(None, store.id, binary.id)
    assert failed.last_error is not None and failed.last_error.code == "invalid_file"
    text = await _upload(fake_app, "trains.txt", TEXTS["trains.txt"])
    await service.attach(None, store.id, [text.id], batch_id="vsfb_unit")
    cancelled = await service.cancel_batch(None, store.id, "vsfb_unit")
    assert cancelled.status == "cancelled"
    assert await _ingested(fake_app, store.id, text.id) in ("cancelled", "completed")  # whichever came first


async def test_a_file_of_too_many_tokens_fails_with_the_limit_named(fake_app, monkeypatch) -> None:
    from homeport.services.retrieval import chunking

    monkeypatch.setattr(chunking, "MAX_FILE_TOKENS", 5)  # the real limit (5,000,000): tests/unit/test_extract.py
    service = fake_app.state.vector_stores
    long = await _upload(fake_app, "trains.txt", TEXTS["trains.txt"])
    store = await service.create(None, VectorStoreCreate(file_ids=[long.id]))
    assert await _ingested(fake_app, store.id, long.id) == "failed"
    failed = await service.file(None, store.id, long.id)
    assert failed.last_error is not None and failed.last_error.code == "invalid_file"
    assert "file search reads at most 5 from one file" in failed.last_error.message


async def test_files_left_in_progress_are_ingested_after_a_restart(fake_app) -> None:
    service, ingestion = fake_app.state.vector_stores, fake_app.state.vector_stores.ingestion
    trains = await _upload(fake_app, "trains.txt", TEXTS["trains.txt"])
    store = await service.create(None, VectorStoreCreate())
    links = await service.attach(None, store.id, [trains.id])
    assert await _ingested(fake_app, store.id, trains.id) == "completed"
    async with fake_app.state.db.sessions() as session, session.begin():  # as a process that died mid-way left it
        link = await session.get(type(links[0]), (store.id, trains.id))
        link.status = "in_progress"
    await ingestion.start()  # what a starting process does
    assert await _ingested(fake_app, store.id, trains.id) == "completed"


def test_the_embedding_runtime_can_load_after_a_vector_index() -> None:
    """usearch's extension carries its own C++ runtime: ONNX Runtime loaded after it crashed the
    process (a store searched before the embedding model loaded). Checked in a fresh interpreter."""
    import subprocess
    import sys

    code = ("from homeport.services.retrieval.vector_index import _usearch_index\n"
            "index = _usearch_index()(ndim=8, metric='ip', dtype='f32')\n"
            "import onnxruntime\nprint(onnxruntime.InferenceSession.__name__)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "InferenceSession", (done.returncode, done.stderr[-500:])
