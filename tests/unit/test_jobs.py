"""saq on Homeport's database: SqliteQueue (embedded) and saq's PostgresQueue, driven by saq's worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from saq import Queue
from saq.job import Status

from homeport.storage.db import Database
from homeport.storage.jobs import JobWorker, open_queue

pytestmark = pytest.mark.anyio


@pytest.fixture
async def queue(db: Database) -> AsyncIterator[Queue]:
    q = open_queue(db.url, db.engine, name="test")
    await q.connect()
    yield q
    await q.disconnect()


async def _work(queue: Queue, calls: list[tuple[str, int]], **timers: int) -> tuple[JobWorker, asyncio.Task[None]]:
    async def record(ctx: dict, *, name: str) -> str:
        calls.append((name, ctx["job"].attempts))
        return name.upper()

    worker = JobWorker(
        queue, functions=[("record", record)], concurrency=2, timers={"sweep": 1, "schedule": 1, "abort": 1, **timers}
    )  # type: ignore[typeddict-item]
    return worker, asyncio.create_task(worker.start())


async def _until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_jobs_run_once_with_their_result(queue: Queue) -> None:
    job = await queue.enqueue("record", key="a", name="a")
    assert job is not None
    assert await queue.enqueue("record", key="a", name="again") is None  # same key, still pending
    calls: list[tuple[str, int]] = []
    worker, task = await _work(queue, calls)
    try:
        await job.refresh(until_complete=10)
        assert job.status == Status.COMPLETE and job.result == "A"
        assert calls == [("a", 1)]
        assert await queue.enqueue("record", key="a", name="b") is not None  # finished: may run again
        await _until(lambda: _status(queue, "a", Status.COMPLETE))
        assert [c[0] for c in calls] == ["a", "b"]
    finally:
        await worker.stop()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_scheduled_job_waits_for_its_time(queue: Queue) -> None:
    calls: list[tuple[str, int]] = []
    worker, task = await _work(queue, calls)
    try:
        await queue.enqueue("record", key="later", name="later", scheduled=int(time.time()) + 2)
        await asyncio.sleep(0.8)
        assert calls == []
        await _until(lambda: _status(queue, "later", Status.COMPLETE))
    finally:
        await worker.stop()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_job_whose_worker_died_is_swept_back_and_run_again(queue: Queue) -> None:
    await queue.enqueue("record", key="orphan", name="orphan", heartbeat=1, retries=3, timeout=0)
    taken = await queue.dequeue(timeout=5)  # a worker took it ... and its process died: no heartbeat
    assert taken is not None and taken.key == "orphan"
    taken.attempts += 1
    await taken.update(status=Status.ACTIVE)
    assert await queue.count("active") == 1
    calls: list[tuple[str, int]] = []
    worker, task = await _work(queue, calls)
    try:
        await _until(lambda: _status(queue, "orphan", Status.COMPLETE))
        assert calls == [("orphan", 2)]  # the second attempt, here
    finally:
        await worker.stop()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_live_job_that_heartbeats_is_left_alone(queue: Queue) -> None:
    release = asyncio.Event()

    async def slow(ctx: dict) -> None:
        while not release.is_set():
            await ctx["job"].update()  # the heartbeat
            await asyncio.sleep(0.3)

    worker = JobWorker(queue, functions=[("slow", slow)], timers={"sweep": 1})
    task = asyncio.create_task(worker.start())
    try:
        await queue.enqueue("slow", key="s", heartbeat=1, timeout=0, retries=3)
        await asyncio.sleep(3.5)  # several sweeps
        job = await queue.job("s")
        assert job is not None and job.status == Status.ACTIVE and job.attempts == 1
        release.set()
        await _until(lambda: _status(queue, "s", Status.COMPLETE))
    finally:
        await worker.stop()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_idle_worker_reads_the_table_once_a_second_not_once_per_slot(queue: Queue, db: Database) -> None:
    if not db.url.startswith("sqlite"):
        pytest.skip("SqliteQueue's polling; saq's PostgresQueue listens for notifications")
    claims = 0
    claim = queue._claim  # type: ignore[attr-defined]

    async def counted() -> object:
        nonlocal claims
        claims += 1
        return await claim()

    queue._claim = counted  # type: ignore[attr-defined]
    worker = JobWorker(queue, functions=[("noop", lambda ctx: asyncio.sleep(0))], concurrency=4)
    task = asyncio.create_task(worker.start())
    async def every_slot_looked() -> bool:
        return claims >= 4

    try:
        await _until(every_slot_looked)  # started, however slowly
        await asyncio.sleep(1)
        before = claims
        await asyncio.sleep(4)
        assert claims - before <= 6, claims - before  # one poller: ~4 (four slots polling: ~16)
    finally:
        await worker.stop()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("due", ["now", "later"])
async def test_jobs_that_come_due_together_run_together(queue: Queue, due: str) -> None:
    """Four slots, four jobs that each wait for all four to be running: enqueued at once (each
    enqueue wakes the slots) or scheduled for later (the one polling slot finds the first and
    wakes the others)."""
    running: set[str] = set()
    all_running = asyncio.Event()

    async def meet(ctx: dict, *, name: str) -> None:
        running.add(name)
        if len(running) == 4:
            all_running.set()
        await asyncio.wait_for(all_running.wait(), 30)

    worker = JobWorker(queue, functions=[("meet", meet)], concurrency=4)
    task = asyncio.create_task(worker.start())
    try:
        await asyncio.sleep(0.5)  # every slot waiting
        at = int(time.time()) + (2 if due == "later" else 0)
        for name in "abcd":
            await queue.enqueue("meet", key=name, name=name, scheduled=at, timeout=60)
        for name in "abcd":
            await _until(lambda: _status(queue, name, Status.COMPLETE), timeout=40)  # noqa: B023
    finally:
        await worker.stop()
        await asyncio.gather(task, return_exceptions=True)


async def _status(queue: Queue, key: str, status: Status) -> bool:
    job = await queue.job(key)
    return job is not None and job.status == status


async def test_replicas_starting_together_on_a_new_database_all_find_the_queue_tables(db: Database) -> None:
    # saq's own table set-up skips when another process holds its lock: a replica starting beside
    # the one making the tables went on to read tables that were not there yet (seen in CI)
    queues = [open_queue(db.url, db.engine, name="test") for _ in range(4)]

    async def start(queue: Queue) -> int:
        await queue.connect()
        return (await queue.info())["queued"]  # at once, as a starting worker does: reads saq's stats table

    try:
        assert await asyncio.gather(*(start(q) for q in queues)) == [0, 0, 0, 0]
    finally:
        await asyncio.gather(*(q.disconnect() for q in queues))
