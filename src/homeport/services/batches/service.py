"""The Batch API: a JSONL file of requests run as one job on the shared queue.

    validating → in_progress → finalizing → completed     (or failed, cancelling → cancelled)

The job validates the file (JSON per line, unique custom_id, one endpoint, a known model), then
runs its lines through the same services, admission (the key's limits and budgets) and usage
records as live calls, several at once so the engine's slots stay busy. Each line's result is a
row whose primary key is (batch, line): a job cut off by a crash is run again by another worker,
which skips the lines already done — every custom_id lands in the output or error file once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from saq.job import Job
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ...backends.base import background_work
from ...errors import EngineOverloaded, HomeportError, InvalidRequest, NotFound, RateLimited, invalid_body
from ...ids import new_id, sortable_id
from ...protocol.batches import BatchCreate, BatchLine
from ...storage.db import Database, in_project, ordered
from ...storage.jobs import Jobs, heartbeating
from ...storage.tables import BatchResultRow, BatchRow
from ..platform.admission import Admitter
from ..platform.usage import UsageEvent, UsageRecorder
from ..retrieval.files import FileStore

__all__ = ["BatchService", "Endpoint", "MAX_LINES"]

log = logging.getLogger(__name__)

MAX_LINES = 50_000  # OpenAI's limit
MAX_BYTES = 200 * 1024 * 1024  # OpenAI's limit on a batch's input file
_POLL_S = 0.5
_RETRIES = 30  # waits on a full engine queue or a rate limit before a line fails


@dataclass(frozen=True)
class Endpoint:
    """What a batch line's `url` is served by: the family's request type, local service, upstream
    relay (models served by other servers) and usage kind."""

    request: type[BaseModel]
    service: Any
    usage: str
    relay: Any = None

    def serving(self, model: str) -> Any:
        return self.relay if self.relay is not None and self.relay.handles(model) else self.service

    def upstream(self, model: Any) -> bool:
        return self.relay is not None and isinstance(model, str) and self.relay.handles(model)


@dataclass(frozen=True)
class BatchTerms:
    """What a deployment decides about batches (settings `batch_*`)."""

    discount: float = 0.5
    """Share taken off the price of batch lines (OpenAI: 50%)."""
    window_s: int = 86400
    """A batch's completion window: lines not run by then are expired (OpenAI: 24 h)."""
    upstream_concurrency: int = 8
    """Lines of one batch in flight at once to a model served by upstream servers."""
    local_concurrency: int = 12
    """Lines of one batch in flight at once on the embedded engines: their slots and a few more,
    waiting, so a slot a line leaves is taken at the next step (they yield to interactive requests)."""


class BatchService:
    def __init__(
        self, db: Database, files: FileStore, jobs: Jobs, admitter: Admitter, usage: UsageRecorder,
        endpoints: dict[str, Endpoint], terms: BatchTerms = BatchTerms(),
    ) -> None:  # fmt: skip
        self._db, self._files, self._jobs, self._admitter, self._usage = db, files, jobs, admitter, usage
        self._endpoints, self._terms = endpoints, terms
        jobs.register("run_batch", self._job)

    # ---- API ----------------------------------------------------------------------------

    async def create(self, project_id: str | None, key_id: str | None, req: BatchCreate) -> dict[str, Any]:
        if req.endpoint not in self._endpoints:
            raise InvalidRequest(f"Batches run {', '.join(sorted(self._endpoints))}; not {req.endpoint}.",
                                 param="endpoint")  # fmt: skip
        stored = await self._files.get(project_id, req.input_file_id, param="input_file_id")
        if stored.purpose != "batch":
            raise InvalidRequest("The input file must be uploaded with purpose 'batch'.", param="input_file_id")
        if stored.bytes > MAX_BYTES:
            raise InvalidRequest(f"A batch's input file may hold at most {MAX_BYTES // 2**20} MB; this one has "
                                 f"{stored.bytes / 2**20:.0f} MB.", param="input_file_id")  # fmt: skip
        now = int(time.time())
        batch = {
            "id": sortable_id("batch_"), "object": "batch", "endpoint": req.endpoint, "errors": None,
            "input_file_id": req.input_file_id, "completion_window": req.completion_window, "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
            "expires_at": now + self._terms.window_s, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": req.metadata or {},
            "_output_expires_s": req.output_expires_after.seconds if req.output_expires_after else None,
        }  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            session.add(BatchRow(id=batch["id"], project_id=project_id, key_id=key_id, status="validating",
                                 created_at=now, body=json.dumps(batch)))  # fmt: skip
        await self._jobs.enqueue("run_batch", batch_id=batch["id"], timeout=0, heartbeat=self._jobs.heartbeat_s,
                                 retries=4, ttl=3600)  # fmt: skip
        return _public(batch)

    async def _row(self, project_id: str | None, batch_id: str) -> BatchRow:
        async with self._db.sessions() as session:
            row = await session.scalar(select(BatchRow).where(BatchRow.id == batch_id,
                                                              in_project(BatchRow.project_id, project_id)))  # fmt: skip
        if row is None:
            raise NotFound(f"No batch found with id '{batch_id}'.", param="batch_id")
        return row

    async def get(self, project_id: str | None, batch_id: str) -> dict[str, Any]:
        return _public(json.loads((await self._row(project_id, batch_id)).body))

    async def find(self, project_id: str | None) -> list[dict[str, Any]]:
        query = ordered(select(BatchRow.body).where(in_project(BatchRow.project_id, project_id)), "desc", BatchRow.id)
        async with self._db.sessions() as session:
            return [_public(json.loads(b)) for b in await session.scalars(query)]

    async def cancel(self, project_id: str | None, batch_id: str) -> dict[str, Any]:
        batch = await self.get(project_id, batch_id)
        if batch["status"] in ("validating", "in_progress"):
            await self._move(batch, "cancelling", cancelling_at=int(time.time()))
        return await self.get(project_id, batch_id)

    async def _move(self, batch: dict[str, Any], status: str, **fields: Any) -> None:
        batch |= {"status": status, **fields}
        async with self._db.sessions() as session, session.begin():
            await session.execute(update(BatchRow).where(BatchRow.id == batch["id"])
                                  .values(status=status, body=json.dumps(batch)))  # fmt: skip

    # ---- the job ------------------------------------------------------------------------

    async def _job(self, ctx: dict[str, Any], *, batch_id: str) -> None:
        job: Job = ctx["job"]
        await heartbeating(job, self._jobs.heartbeat_s / 3, self._run(batch_id))

    async def _run(self, batch_id: str) -> None:
        async with self._db.sessions() as session:
            row = await session.get(BatchRow, batch_id)
        if row is None:
            return
        batch = json.loads(row.body)
        if batch["status"] in ("completed", "failed", "cancelled", "expired"):
            return
        lines, errors = await self._read(row.project_id, batch)
        if batch["status"] == "validating":
            errors = errors or await self._over_token_limit(row, batch, lines)
            if errors:
                await self._move(batch, "failed", failed_at=int(time.time()), errors={"object": "list", "data": errors})
                return
            counts = {"total": len(lines), "completed": 0, "failed": 0}
            await self._move(batch, "in_progress", in_progress_at=int(time.time()), request_counts=counts)
        if batch["status"] == "in_progress":
            await self._run_lines(row, batch, lines)
            if time.time() >= batch["expires_at"]:
                await self._expire(row, lines)
        await self._finalize(row.project_id, batch)

    async def _read(self, project_id: str | None, batch: dict[str, Any]) -> tuple[list[BatchLine], list[dict]]:
        """The input file's lines, and what is wrong with them (each error names its line)."""
        try:
            stored = await self._files.get(project_id, batch["input_file_id"])
        except NotFound:
            return [], [{"code": "invalid_file", "message": "The input file was deleted.", "line": None}]
        raw = (await self._files.read(stored)).decode("utf-8", "replace").splitlines()
        lines, errors, seen = [], [], set()
        for n, text in enumerate(raw, start=1):
            if not text.strip():
                continue
            try:
                line = BatchLine.model_validate_json(text)
            except ValidationError as exc:
                errors.append({"code": "invalid_request", "line": n, "message": f"Line {n}: {exc.errors()[0]['msg']}."})
                continue
            if line.url != batch["endpoint"]:
                wanted = batch["endpoint"]
                errors.append({"code": "mismatched_endpoint", "line": n, "param": "url",
                               "message": f"Line {n} asks {line.url}, not the batch's {wanted}."})  # fmt: skip
            elif line.custom_id in seen:
                errors.append({"code": "duplicate_custom_id", "line": n, "param": "custom_id",
                               "message": f"Line {n} repeats custom_id {line.custom_id!r}."})  # fmt: skip
            elif not self._known(model := line.body.get("model", self._default_model(line.url))):
                errors.append({"code": "model_not_found", "line": n, "param": "body.model",
                               "message": f"Line {n}: the model {model!r} does not exist."})  # fmt: skip
            seen.add(line.custom_id)
            lines.append(line)
        if len(lines) > MAX_LINES:
            errors.append({"code": "too_many_lines", "line": None, "message": f"At most {MAX_LINES} lines a batch."})
        if not lines and not errors:
            errors.append({"code": "empty_file", "line": None, "message": "The input file has no requests."})
        return lines, errors

    def _default_model(self, url: str) -> str | None:
        """The endpoint's default model, where it has one (moderations: omni-moderation-latest)."""
        field = self._endpoints[url].request.model_fields.get("model") if url in self._endpoints else None
        return field.default if field is not None and isinstance(field.default, str) else None

    def _known(self, model: Any) -> bool:
        try:
            return isinstance(model, str) and self._admitter.registry.config(model) is not None
        except HomeportError:
            return False

    async def _over_token_limit(self, row: BatchRow, batch: dict[str, Any], lines: list[BatchLine]) -> list[dict]:
        """`batch_1_day_max_input_tokens` of the key and its project: the input tokens of this batch and
        of the owner's other batches of the last 24 hours (not failed) must fit. Counted only where
        such a limit is set (planning 50,000 lines takes a while)."""
        key = await self._admitter.keys.load(row.key_id) if row.key_id is not None else None
        limits = [limit for limit in (key.limits if key else ()) if limit.batch_tpd is not None]
        if not limits:
            return []
        batch["_input_tokens"] = mine = await self._input_tokens(row, batch["endpoint"], lines)
        query = select(BatchRow.key_id, BatchRow.body).where(
            BatchRow.id != row.id, BatchRow.created_at >= int(time.time()) - 86400, BatchRow.status != "failed",
            in_project(BatchRow.project_id, row.project_id))  # fmt: skip
        async with self._db.sessions() as session:
            earlier = [(k, json.loads(body).get("_input_tokens") or {}) for k, body in (await session.execute(query))]
        for limit in limits:
            counted = [t for k, t in earlier if limit.owner == "project" or k == limit.owner_id]
            enqueued = sum(n for tokens in counted for m, n in tokens.items() if limit.applies_to(m))
            wanted = sum(n for m, n in mine.items() if limit.applies_to(m))
            assert limit.batch_tpd is not None
            if wanted and enqueued + wanted > limit.batch_tpd:
                about = "all models" if limit.model == "*" else limit.model
                return [{"code": "token_limit_exceeded", "line": None, "message": (
                    f"Enqueued token limit reached for {about} in this {limit.owner}. Limit: {limit.batch_tpd} "
                    f"input tokens per day; enqueued in the last 24 hours: {enqueued}; this batch: {wanted}. "
                    "Try again once some of them are a day old.")}]  # fmt: skip
        return []

    async def _input_tokens(self, row: BatchRow, endpoint: str, lines: list[BatchLine]) -> dict[str, int]:
        """Input tokens per model id, as each line's plan counts them (bad lines count nothing)."""
        target, tokens = self._endpoints[endpoint], dict[str, int]()
        for line in lines:
            try:
                body = target.request.model_validate(line.body | ({"stream": False} if "stream" in
                                                                   target.request.model_fields else {}))  # fmt: skip
                plan = await target.serving(body.model).plan(body, row.project_id, row.key_id)  # type: ignore[attr-defined]
                model = self._admitter.registry.config(body.model).id  # type: ignore[attr-defined]
            except (HomeportError, ValidationError):
                continue
            tokens[model] = tokens.get(model, 0) + plan.estimate[0]
        return tokens

    async def _run_lines(self, row: BatchRow, batch: dict[str, Any], lines: list[BatchLine]) -> None:
        async with self._db.sessions() as session:
            done = set(await session.scalars(select(BatchResultRow.line).where(BatchResultRow.batch_id == row.id)))
        todo = [(n, line) for n, line in enumerate(lines) if n not in done]
        local = asyncio.Semaphore(self._terms.local_concurrency)
        upstream = asyncio.Semaphore(self._terms.upstream_concurrency)
        target = self._endpoints[batch["endpoint"]]
        # The status (a cancel) is read, and request_counts written, at most every _POLL_S: per line,
        # those queries cost the engine more CPU than they are worth (the last count is exact).
        seen = _Seen(batch["status"])

        async def cancelled() -> bool:
            if time.monotonic() - seen.read >= _POLL_S:
                seen.status, seen.read = await self._status(row.id), time.monotonic()
            return seen.status == "cancelling"

        async def one(n: int, line: BatchLine) -> None:
            async with upstream if target.upstream(line.body.get("model")) else local:
                if time.time() >= batch["expires_at"] or await cancelled():
                    return
                ok, result = await self._call(row, batch["endpoint"], line)
            # Recorded after leaving the gate (the next line is already in the engine meanwhile), a
            # commit every _POLL_S for all the lines done since: a crash re-runs at most those lines,
            # and each still gets one result row.
            seen.results.append(BatchResultRow(batch_id=row.id, line=n, ok=ok, body=json.dumps(result)))
            if time.monotonic() - seen.counted >= _POLL_S:
                seen.counted = time.monotonic()
                await self._commit_results(seen.take())
                await self._count(batch)

        await asyncio.gather(*(one(n, line) for n, line in todo))
        await self._commit_results(seen.take())

    async def _commit_results(self, results: list[BatchResultRow]) -> None:
        if not results:
            return
        try:
            async with self._db.sessions() as session, session.begin():
                session.add_all(results)
        except IntegrityError:  # some recorded already (a retried job overlapping its predecessor): once is enough
            for result in results:
                try:
                    async with self._db.sessions() as session, session.begin():
                        session.add(BatchResultRow(batch_id=result.batch_id, line=result.line, ok=result.ok,
                                                   body=result.body))  # fmt: skip
                except IntegrityError:
                    pass

    async def _status(self, batch_id: str) -> str | None:
        async with self._db.sessions() as session:
            return await session.scalar(select(BatchRow.status).where(BatchRow.id == batch_id))

    async def _count(self, batch: dict[str, Any]) -> None:
        async with self._db.sessions() as session:
            counts = dict((await session.execute(select(BatchResultRow.ok, func.count())
                                                 .where(BatchResultRow.batch_id == batch["id"])
                                                 .group_by(BatchResultRow.ok))).all())  # fmt: skip
        status = await self._status(batch["id"]) or batch["status"]
        fields = {"completed": counts.get(True, 0), "failed": counts.get(False, 0)}
        await self._move(batch, status, request_counts=batch["request_counts"] | fields)

    async def _call(self, row: BatchRow, endpoint: str, line: BatchLine) -> tuple[bool, dict[str, Any]]:
        """One line through its family's service, admitted and metered like a live call."""
        target = self._endpoints[endpoint]
        request_id = new_id("req_", 32)
        started = time.perf_counter()
        for attempt in range(_RETRIES):
            try:
                body = target.request.model_validate(line.body | ({"stream": False} if "stream" in
                                                                   target.request.model_fields else {}))  # fmt: skip
                service = target.serving(body.model)  # type: ignore[attr-defined]
                plan = await service.plan(body, row.project_id, row.key_id)
                admission = await self._admitter.admit_key(row.key_id, body.model, plan.estimate)  # type: ignore[attr-defined]
                try:
                    with background_work():  # the engine gives interactive requests their slots first
                        result = await service.create(plan)
                except BaseException:
                    if admission is not None:
                        await admission.settle((0, 0))
                    raise
                usage = result.usage
                used = (usage.prompt_tokens, getattr(usage, "completion_tokens", 0))
                if admission is not None:
                    await admission.settle(used)
                self._record(row, target, body.model, endpoint, used, started)  # type: ignore[attr-defined]
                payload = json.loads(result.model_dump_json())
                return True, _line(line, {"status_code": 200, "request_id": request_id, "body": payload})
            except (RateLimited, EngineOverloaded) as exc:  # wait for room, as a patient client would
                if attempt == _RETRIES - 1:
                    return False, _line(line, _failure(exc, request_id))
                await asyncio.sleep(min(exc.retry_after or 1.0, 10.0))
            except HomeportError as exc:
                return False, _line(line, _failure(exc, request_id))
            except ValidationError as exc:  # named as a live call's 400 would name it
                return False, _line(line, _failure(invalid_body(exc, line.body), request_id))
        raise AssertionError("unreachable")

    def _record(self, row: BatchRow, target: Endpoint, model: str, endpoint: str, used: tuple[int, int],
                started: float) -> None:  # fmt: skip
        model_id = self._admitter.registry.config(model).id
        off = 1 - self._terms.discount
        cost_in, cost_out = (round(c * off) for c in self._admitter.prices(model_id).split(*used))
        self._usage.record(UsageEvent(target.usage, row.project_id, row.key_id, model_id, endpoint, 200, used[0],
                                      used[1], 0, round(1000 * (time.perf_counter() - started)),
                                      input_micro_usd=cost_in, output_micro_usd=cost_out))  # fmt: skip

    async def _expire(self, row: BatchRow, lines: list[BatchLine]) -> None:
        """The window closed: each line that did not run gets OpenAI's `batch_expired` error line."""
        async with self._db.sessions() as session:
            done = set(await session.scalars(select(BatchResultRow.line).where(BatchResultRow.batch_id == row.id)))
        error = {"code": "batch_expired",
                 "message": "This request could not be executed before the completion window expired."}  # fmt: skip
        expired = [BatchResultRow(batch_id=row.id, line=n, ok=False, body=json.dumps(
                   {"id": new_id("batch_req_", 32), "custom_id": line.custom_id, "response": None, "error": error}))
                   for n, line in enumerate(lines) if n not in done]  # fmt: skip
        if expired:
            try:
                async with self._db.sessions() as session, session.begin():
                    session.add_all(expired)
            except IntegrityError:
                pass  # another worker recorded them first

    async def _finalize(self, project_id: str | None, batch: dict[str, Any]) -> None:
        """Write what finished (also for a cancelled or expired batch) into the output and error files."""
        cancelled = await self._status(batch["id"]) == "cancelling"
        await self._move(batch, batch["status"] if cancelled else "finalizing", finalizing_at=int(time.time()))
        query = select(BatchResultRow).where(BatchResultRow.batch_id == batch["id"]).order_by(BatchResultRow.line)
        async with self._db.sessions() as session:
            results = list(await session.scalars(query))
        expired = not cancelled and any(not r.ok and '"batch_expired"' in r.body for r in results)
        files: dict[str, str | None] = {}
        for name, ok in (("output_file_id", True), ("error_file_id", False)):
            chosen = [r.body for r in results if r.ok == ok]
            files[name] = None
            if chosen:
                stored = await self._files.create(project_id, f"{batch['id']}_{name.split('_')[0]}.jsonl",
                                                  "batch_output", _chunks(chosen), batch.get("_output_expires_s"),
                                                  output=True)  # fmt: skip
                files[name] = stored.id
        await self._count(batch)
        now = int(time.time())
        status = "cancelled" if cancelled else "expired" if expired else "completed"
        await self._move(batch, status, **files, **{f"{status}_at": now})


@dataclass
class _Seen:
    """A running batch's status as last read, when it was read and its counts written, and the results
    not committed yet."""

    status: str | None
    read: float = 0.0
    counted: float = 0.0
    results: list[BatchResultRow] = field(default_factory=list)
    """Lines done since the last commit."""

    def take(self) -> list[BatchResultRow]:
        taken, self.results = self.results, []
        return taken


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch as the API shows it: timestamps and files not reached yet are left out, not null."""
    return {k: v for k, v in batch.items() if v is not None and not k.startswith("_")}


def _line(line: BatchLine, response: dict[str, Any]) -> dict[str, Any]:
    return {"id": new_id("batch_req_", 32), "custom_id": line.custom_id, "response": response, "error": None}


def _failure(exc: HomeportError, request_id: str) -> dict[str, Any]:
    error = {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
    return {"status_code": exc.status, "request_id": request_id, "body": {"error": error}}


async def _chunks(lines: list[str]) -> AsyncIterator[bytes]:
    yield ("\n".join(lines) + "\n").encode()
