"""Background jobs on saq: its PostgreSQL queue at scale, `SqliteQueue` (here) embedded.

saq does what a job library is for: a worker that takes jobs off a shared queue and runs them
concurrently, marks them active / complete / failed, retries, runs jobs scheduled for later, and
sweeps jobs whose worker stopped heartbeating (its process died) back into the queue so another
worker — in this process after a restart, or in another replica — runs them again.

saq keeps queues in Redis or PostgreSQL. Homeport's embedded default is one SQLite file, so
`SqliteQueue` implements saq's queue interface on that database: one table (`job_queue`), the
claim a single conditional UPDATE (SQLite serialises writers), the rest saq's own code. With a
PostgreSQL database Homeport uses saq's `PostgresQueue` on the same database (saq makes its tables).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

from saq import Queue, Worker
from saq.job import TERMINAL_STATUSES, Job, Status
from saq.types import CountKind, PartialTimersDict, QueueInfo, WorkerInfo
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["Hourly", "Jobs", "SqliteQueue", "JobWorker", "heartbeating", "open_queue"]

log = logging.getLogger(__name__)

T = TypeVar("T")
JobFunction = Callable[..., Awaitable[Any]]


class Jobs:
    """The process's job queue and its one worker. Each family registers its job functions before
    `start`; `concurrency` jobs run at once (0: this process only enqueues, other replicas run them)."""

    def __init__(self, queue: Queue, *, concurrency: int = 4, heartbeat_s: int = 30) -> None:
        self.queue, self.heartbeat_s = queue, heartbeat_s
        self._concurrency = concurrency
        self._functions: list[tuple[str, JobFunction]] = []
        self._worker: JobWorker | None = None
        self._task: asyncio.Task[None] | None = None

    def register(self, name: str, function: JobFunction) -> None:
        self._functions.append((name, function))

    async def enqueue(self, name: str, **kwargs: Any) -> Job | None:
        return await self.queue.enqueue(name, **kwargs)

    async def start(self) -> None:
        await self.queue.connect()
        if self._concurrency <= 0:
            return
        sweep_s = max(1, min(5, self.heartbeat_s // 2))
        self._worker = JobWorker(
            self.queue,
            functions=self._functions,
            concurrency=self._concurrency,
            timers=PartialTimersDict(sweep=sweep_s, schedule=1, abort=1, worker_info=10),
        )
        self._task = asyncio.create_task(self._worker.start())

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.stop()  # a job cut off here goes back to the queue (saq retries it)
            assert self._task is not None
            await asyncio.gather(self._task, return_exceptions=True)
        await self.queue.disconnect()


class Hourly:
    """Work run once an hour across every replica: a job on the shared queue whose key names the
    hour (a second replica's enqueue of the same hour is a no-op); the first at the next full hour,
    so a starting server is not also sweeping."""

    EVERY_S = 3600

    def __init__(self, jobs: Jobs, name: str, work: Callable[[], Awaitable[Any]]) -> None:
        self._jobs, self._name, self._work = jobs, name, work
        jobs.register(name, self._job)

    async def start(self) -> None:
        await self._schedule()

    async def _schedule(self) -> None:
        at = (time.time() // self.EVERY_S + 1) * self.EVERY_S
        await self._jobs.enqueue(self._name, key=f"{self._name}-{int(at // self.EVERY_S)}", scheduled=int(at),
                                 timeout=600, ttl=2 * self.EVERY_S)  # fmt: skip

    async def _job(self, ctx: dict[str, Any]) -> None:
        try:
            await self._work()
        finally:
            await self._schedule()


async def heartbeating(job: Job, every_s: float, work: Awaitable[T]) -> T:
    """Await `work` while telling saq the job is alive every `every_s`: the sweeper leaves it alone
    as long as this process lives, and puts it back in the queue once it stops."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await job.update()
            except Exception:  # the next beat tries again; several missed ones mean a sweep
                log.exception("job heartbeat failed")

    beating = asyncio.create_task(beat())
    try:
        return await work
    finally:
        beating.cancel()


_TERMINAL = tuple(s.value for s in TERMINAL_STATUSES)


def open_queue(database_url: str, engine: AsyncEngine, name: str = "homeport") -> Queue:
    """saq's queue on Homeport's database: PostgresQueue on PostgreSQL, SqliteQueue on SQLite."""
    if database_url.startswith("sqlite"):
        return SqliteQueue(engine, name)
    from saq.queue.postgres import PostgresQueue  # psycopg: only when the database is PostgreSQL

    plain = "postgresql://" + database_url.split("://", 1)[1]  # psycopg takes no "+driver"

    class SharedPostgresQueue(PostgresQueue):
        """saq's PostgreSQL queue, its tables made by one replica at a time. saq's own `init_db` takes
        a *try*-lock and returns at once when another process holds it, so a replica starting beside
        the one making the tables went on to use tables that did not exist yet; here each waits."""

        async def init_db(self) -> None:
            import psycopg

            async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as lock:
                await lock.execute("SELECT pg_advisory_lock(hashtext('homeport:saq-tables'))")
                await super().init_db()  # the lock ends with the connection

    return SharedPostgresQueue.from_url(plain, name=name, min_size=1, max_size=4)


class JobWorker(Worker):
    """saq's worker, embedded in the server: uvicorn owns SIGINT/SIGTERM, so the worker takes none."""

    SIGNALS: list[Any] = []


class SqliteQueue(Queue):
    """saq's queue interface on a SQLite table. Jobs are saq `Job`s serialised as JSON."""

    def __init__(self, engine: AsyncEngine, name: str = "default") -> None:
        super().__init__(name, dump=None, load=None)
        self._engine = engine
        self._enqueued = asyncio.Event()  # wakes this process's waiting dequeues at once
        self._polling = False  # one waiting dequeue polls the table
        self._workers: dict[str, tuple[WorkerInfo, float]] = {}

    async def disconnect(self) -> None:
        pass  # the engine belongs to the server's Database

    async def _execute(self, sql: str, **params: Any) -> Any:
        """Plain SQL, straight to the driver: no SQLAlchemy compile (or cache key) per statement."""
        async with self._engine.begin() as conn:
            return await conn.exec_driver_sql(sql, params)

    # ---- enqueue / dequeue -------------------------------------------------------------------

    async def _enqueue(self, job: Job) -> Job | None:
        """Insert; a key already queued or running is not enqueued again (saq's contract: None)."""
        result = await self._execute(
            "INSERT INTO job_queue (key, queue, status, scheduled, job) "
            "VALUES (:key, :queue, :status, :scheduled, :job) "
            "ON CONFLICT (key) DO UPDATE SET queue = excluded.queue, status = excluded.status, "
            "scheduled = excluded.scheduled, job = excluded.job, expire_at = NULL "
            f"WHERE job_queue.status IN {_TERMINAL} RETURNING key",
            key=job.key, queue=self.name, status=job.status.value, job=self.serialize(job),
            scheduled=job.scheduled or int(time.time()),
        )  # fmt: skip
        if result.first() is None:
            return None
        self._enqueued.set()
        return job

    async def dequeue(self, timeout: float = 0.0, poll_interval: float = 0.0) -> Job | None:
        """The next due job, now active; waits up to `timeout` seconds (0: for ever).

        The worker waits in `concurrency` dequeues at once. One of them polls the table every
        second (a job scheduled for later comes due without an enqueue); the others wait to be
        woken by an enqueue or by a dequeue that found a job (there may be more). An idle server
        thus reads the table once a second, not once per waiting dequeue."""
        deadline = time.monotonic() + timeout if timeout > 0 else None
        while True:
            self._enqueued.clear()
            job = await self._claim()
            if job is not None:
                self._enqueued.set()  # the others look for more, and one of them takes up polling
                return job
            polls = not self._polling
            wait = (poll_interval or 1.0) if polls else None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = left if wait is None else min(wait, left)
            self._polling |= polls
            try:
                await asyncio.wait_for(self._enqueued.wait(), wait)
            except TimeoutError:
                pass
            finally:
                if polls:
                    self._polling = False

    async def _claim(self) -> Job | None:
        # started/touched are written with the status, in the same UPDATE: a sweep reading the row
        # in between would otherwise see an active job touched at enqueue time and call it stuck.
        now_ms = int(time.time() * 1000)
        row = (
            await self._execute(
                "UPDATE job_queue SET status = 'active', "
                "job = json_set(job, '$.started', :now_ms, '$.touched', :now_ms) "
                "WHERE key = (SELECT key FROM job_queue WHERE queue = :queue AND status = 'queued' "
                "AND scheduled <= :now ORDER BY scheduled, rowid LIMIT 1) AND status = 'queued' RETURNING job",
                queue=self.name,
                now=int(time.time()),
                now_ms=now_ms,
            )  # fmt: skip
        ).first()
        return None if row is None else self.deserialize(row[0], Status.ACTIVE)

    # ---- state changes -----------------------------------------------------------------------

    async def _update(self, job: Job, status: Status | None = None, **kwargs: Any) -> None:
        job.status = status or job.status
        sql = "UPDATE job_queue SET job = :job, status = :status, scheduled = :scheduled"
        params: dict[str, Any] = {"job": self.serialize(job), "status": job.status.value,
                                  "scheduled": job.scheduled, "key": job.key}  # fmt: skip
        if "expire_at" in kwargs:
            sql += ", expire_at = :expire_at"
            params["expire_at"] = kwargs["expire_at"]
        await self._execute(sql + " WHERE key = :key", **params)

    async def _retry(self, job: Job, error: str | None) -> None:
        scheduled = time.time() + job.next_retry_delay() if job.next_retry_delay() else job.scheduled or time.time()
        await self.update(job, status=Status.QUEUED, scheduled=int(scheduled), expire_at=None)
        self._enqueued.set()

    async def _finish(self, job: Job, status: Status, *, result: Any = None, error: str | None = None) -> None:
        if job.ttl < 0:
            await self._execute("DELETE FROM job_queue WHERE key = :key", key=job.key)
            return
        expire_at = int(time.time() + job.ttl) if job.ttl > 0 else None
        await self.update(job, status=status, expire_at=expire_at)

    async def abort(self, job: Job, error: str, ttl: float = 5) -> None:
        current = await self.job(job.key)
        if current is None or current.status == Status.QUEUED:
            await self.finish(job, Status.ABORTED, error=error)
        else:
            await self.update(job, status=Status.ABORTING, error=error)

    async def sweep(self, lock: int = 60, abort: float = 5.0) -> list[str]:
        """Drop expired finished jobs; put jobs whose worker stopped heartbeating back in the queue."""
        await self._execute(
            f"DELETE FROM job_queue WHERE queue = :queue AND status IN {_TERMINAL} AND expire_at <= :now",
            queue=self.name, now=int(time.time()),
        )  # fmt: skip
        rows = (
            await self._execute(
                "SELECT job, status FROM job_queue WHERE queue = :queue AND status IN ('active', 'aborting')",
                queue=self.name,
            )
        ).all()
        swept = []
        for payload, status in rows:
            job = self.deserialize(payload, status)
            if job is None or not job.stuck:
                continue
            swept.append(job.key)
            log.info("jobs: sweeping %s (its worker stopped)", job.key)
            await self.abort(job, error=self.swept_error_message)
            try:
                await job.refresh(abort)
            except TimeoutError:
                pass  # nobody is running it any more: the point of sweeping
            if job.retryable:
                await self.retry(job, error=self.swept_error_message)
            else:
                await self.finish(job, Status.ABORTED, error=self.swept_error_message)
        return swept

    # ---- reading -----------------------------------------------------------------------------

    async def job(self, job_key: str) -> Job | None:
        row = (
            await self._execute(
                "SELECT job, status FROM job_queue WHERE key = :key AND queue = :queue", key=job_key, queue=self.name
            )
        ).first()
        return self.deserialize(row[0], row[1]) if row else None

    async def jobs(self, job_keys: Iterable[str]) -> list[Job | None]:
        return [await self.job(key) for key in job_keys]

    async def iter_jobs(self, statuses: list[Status] | None = None, batch_size: int = 100) -> AsyncIterator[Job]:
        wanted = tuple(s.value for s in statuses or list(Status)) + ("",)  # never an empty IN ()
        rows = (
            await self._execute(
                f"SELECT job, status FROM job_queue WHERE queue = :queue AND status IN {wanted} ORDER BY rowid",
                queue=self.name,
            )
        ).all()
        for payload, status in rows:
            job = self.deserialize(payload, status)
            if job is not None:
                yield job

    async def count(self, kind: CountKind) -> int:
        statuses = {"queued": ("queued", ""), "active": ("active", ""), "incomplete": ("new", "queued", "active")}[kind]
        result = await self._execute(
            f"SELECT count(*) FROM job_queue WHERE queue = :queue AND status IN {statuses}", queue=self.name
        )
        return int(result.scalar_one())

    async def write_worker_info(self, worker_id: str, info: WorkerInfo, ttl: int) -> None:
        self._workers[worker_id] = (info, time.time() + ttl)  # one process per SQLite file: memory will do

    async def info(self, jobs: bool = False, offset: int = 0, limit: int = 10) -> QueueInfo:
        now = time.time()
        workers = {wid: info for wid, (info, until) in self._workers.items() if until >= now}
        queued, active, incomplete = [await self.count(k) for k in ("queued", "active", "incomplete")]  # type: ignore[arg-type]
        listed = [j.to_dict() async for j in self.iter_jobs([Status.QUEUED, Status.ACTIVE])][offset : offset + limit]
        return {"workers": workers, "name": self.name, "queued": queued, "active": active,
                "scheduled": incomplete - queued - active, "jobs": listed if jobs else []}  # fmt: skip
