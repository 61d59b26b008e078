"""Assistant runs: queued → in_progress → requires_action | completed | incomplete | failed | cancelled.

Runs execute as jobs on the shared queue (storage/jobs.py): creating a run (or submitting its tool
outputs) enqueues one pass; any process's worker takes it, claims the run (queued → in_progress,
one conditional UPDATE) and heartbeats while runner.py executes it. When a process dies mid-pass,
saq's sweeper sees the heartbeat stop and puts the job back in the queue; the worker that takes it
removes that pass's unfinished message and step and runs the pass again (or fails the run after
MAX_ATTEMPTS interrupted passes). No run stays `in_progress` after its process is gone, and none
runs twice. A run waiting for tool outputs gets a job scheduled at its `expires_at`, which expires
it if it is still waiting then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from saq.job import Job

from ...errors import HomeportError, InvalidRequest
from ...protocol.assistants import RunCreate, RunOptions, ToolOutput
from ...storage.jobs import Jobs, heartbeating
from .assistants import AssistantService, check_tools
from .objects import Document
from .runner import MAX_ATTEMPTS, Runner
from .state import TERMINAL, RunRecorder
from .wire import new_run_id, public

__all__ = ["RunService"]

log = logging.getLogger(__name__)

ACTIVE = ["queued", "in_progress", "requires_action", "cancelling"]
STREAM_POLL_S = 3.0


class RunService:
    def __init__(
        self, assistants: AssistantService, recorder: RunRecorder, runner: Runner, jobs: Jobs, *,
        expires_s: int = 600,
    ) -> None:  # fmt: skip
        self._assistants, self.docs, self._record = assistants, recorder.docs, recorder
        self.runner, self._jobs = runner, jobs
        self._expires_s = expires_s  # OpenAI's runs expire 10 minutes after they are created
        self.events = recorder.events
        self._ready: asyncio.Event | None = None
        jobs.register("run_pass", self._run_pass)
        jobs.register("expire_run", self._expire_run)

    async def start(self, ready: asyncio.Event) -> None:
        """`ready`: set once the models are loaded (passes wait for it)."""
        self._ready = ready
        await self.events.start()

    async def close(self) -> None:
        await self.events.close()

    async def enqueue(self, project_id: str | None, run_id: str) -> None:
        """Queue a pass of the run on the shared queue."""
        await self._jobs.enqueue(
            "run_pass", project_id=project_id, run_id=run_id,
            timeout=0, heartbeat=self._jobs.heartbeat_s, retries=MAX_ATTEMPTS + 1, ttl=3600,
        )  # fmt: skip

    # ---- jobs ---------------------------------------------------------------------------

    async def _run_pass(self, ctx: dict[str, Any], *, project_id: str | None, run_id: str) -> None:
        """The job: one pass of a run. Failures end the run (recorded on it), not the job."""
        job: Job = ctx["job"]
        assert self._ready is not None
        try:
            await self._ready.wait()
            await heartbeating(job, self._jobs.heartbeat_s / 3, self.runner.run_pass(project_id, run_id, job.attempts))
        except Exception as exc:  # the run records why; the worker goes on
            log.exception("run %s failed", run_id)
            run = await self.docs.get("run", project_id, run_id)
            if run["status"] not in TERMINAL:
                await self._record.fail(run, *_last_error(exc))
        finally:
            self.events.end(run_id)

    async def _expire_run(self, ctx: dict[str, Any], *, project_id: str | None, run_id: str) -> None:
        """The job scheduled at a waiting run's `expires_at`."""
        run = await self.docs.get("run", project_id, run_id)
        if run["status"] == "requires_action" and run["expires_at"] <= time.time():
            await self._record.expire(project_id, run)

    # ---- API ----------------------------------------------------------------------------

    async def create(self, project_id: str | None, thread: Document, req: RunOptions, key_id: str | None) -> Document:
        """Validate and store a run on `thread` (stream or not, the caller decides how to follow it)."""
        assistant = await self.docs.get("assistant", project_id, req.assistant_id, "assistant_id")
        active = await self.docs.list_of("run", project_id, thread_id=thread["id"], status=ACTIVE)
        if active:
            raise InvalidRequest(f"Thread {thread['id']} already has an active run {active[0]['id']}.",
                                 param="thread_id")  # fmt: skip
        tools = check_tools(req.tools) if req.tools is not None else assistant["tools"]
        model = self._assistants.check_model(req.model or assistant["model"])
        truncation = req.truncation_strategy
        if truncation is not None and truncation.type == "last_messages" and truncation.last_messages is None:
            raise InvalidRequest("truncation_strategy is {'type': 'auto'} or {'type': 'last_messages', "
                                 "'last_messages': N}.", param="truncation_strategy")  # fmt: skip
        extra = req.additional_messages if isinstance(req, RunCreate) else None
        for i, m in enumerate(extra or []):
            await self._assistants.add_message(project_id, thread, m, f"additional_messages.[{i}].")
        fields = req.model_fields_set
        now = int(time.time())
        run = {
            "id": new_run_id(), "object": "thread.run", "created_at": now, "thread_id": thread["id"],
            "assistant_id": assistant["id"], "status": "queued", "required_action": None, "last_error": None,
            "expires_at": now + self._expires_s, "started_at": None, "cancelled_at": None, "failed_at": None,
            "completed_at": None, "incomplete_details": None, "model": model,
            "instructions": req.instructions if req.instructions is not None else (assistant.get("instructions") or ""),
            "tools": tools, "metadata": req.metadata or {}, "usage": None,
            "temperature": req.temperature if "temperature" in fields else assistant.get("temperature"),
            "top_p": req.top_p if "top_p" in fields else assistant.get("top_p"),
            "max_prompt_tokens": req.max_prompt_tokens, "max_completion_tokens": req.max_completion_tokens,
            "truncation_strategy": truncation.model_dump() if truncation else {"type": "auto", "last_messages": None},
            "tool_choice": _dump(req.tool_choice) or "auto",
            "parallel_tool_calls": req.parallel_tool_calls if req.parallel_tool_calls is not None else True,
            "response_format": _dump(req.response_format) or assistant.get("response_format") or "auto",
            "additional_instructions": req.additional_instructions if isinstance(req, RunCreate) else None,
            "_key_id": key_id,
        }  # fmt: skip
        await self.docs.add("run", project_id, run, thread_id=thread["id"], run_id=run["id"])
        return public(run)

    async def submit_tool_outputs(
        self, project_id: str | None, thread_id: str, run_id: str, outputs: list[ToolOutput]
    ) -> Document:
        run = await self._run(project_id, thread_id, run_id)
        if run["status"] == "requires_action" and run["expires_at"] <= time.time():
            await self._record.expire(project_id, run)  # its expiry job may not have run yet
            run = await self.docs.get("run", project_id, run_id, "run_id")
        if run["status"] != "requires_action":
            raise InvalidRequest(f"Runs in status {run['status']} do not accept tool outputs.", param="run_id")
        wanted = {c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]}
        given: dict[str, str] = {}
        for i, out in enumerate(outputs):
            if out.tool_call_id not in wanted:
                raise InvalidRequest(f"No tool call {out.tool_call_id!r} is waiting for output in this run.",
                                     param=f"tool_outputs.[{i}].tool_call_id")  # fmt: skip
            given[out.tool_call_id] = out.output or ""
        if set(given) != wanted:
            missing = ", ".join(sorted(wanted - set(given)))
            raise InvalidRequest(f"Tool outputs are missing for: {missing}.", param="tool_outputs")
        step = await self._record.waiting_step(project_id, run)
        for call in step["step_details"]["tool_calls"]:
            call["function"]["output"] = given[call["id"]]
        await self.docs.save(step | {"status": "completed", "completed_at": int(time.time())})
        run |= {"status": "queued", "required_action": None}
        await self.docs.save(run)
        return public(run)

    async def cancel(self, project_id: str | None, thread_id: str, run_id: str) -> Document:
        run = await self._run(project_id, thread_id, run_id)
        if run["status"] in TERMINAL:
            raise InvalidRequest(f"Cannot cancel run with status '{run['status']}'.", param="run_id")
        if run["status"] in ("queued", "requires_action"):
            if run["status"] == "requires_action":
                step = await self._record.waiting_step(project_id, run)
                await self.docs.save(step | {"status": "cancelled", "cancelled_at": int(time.time())})
            await self._record.finish(run, "cancelled", cancelled_at=int(time.time()), required_action=None)
        else:
            run["status"] = "cancelling"  # the worker stops at its next token
            await self.docs.save(run, only_if_status=["in_progress"])
        return public(await self.docs.get("run", project_id, run_id))

    async def _run(self, project_id: str | None, thread_id: str, run_id: str) -> Document:
        """The run, as stored (with what only Homeport sees), if it is on this thread."""
        run = await self.docs.get("run", project_id, run_id, "run_id")
        if run["thread_id"] != thread_id:
            raise InvalidRequest(f"No run {run_id} on thread {thread_id}.", param="run_id")
        return run

    async def modify(self, project_id: str | None, thread_id: str, run_id: str, metadata: dict | None) -> Document:
        run = await self._run(project_id, thread_id, run_id)
        run["metadata"] = metadata or {}
        await self.docs.save(run)
        return public(run)

    async def stream(
        self, project_id: str | None, run: Document, first: list[tuple[str, Any]]
    ) -> AsyncIterator[tuple[str, Any]]:
        """Events of a run from `first` on, until it stops; the run is queued after subscribing.

        A pass may run on another replica's worker: its events come through Redis. Without Redis
        (or should an event be lost) a quiet stream looks at the run itself every few seconds and,
        once the run has stopped, ends with the run's final state instead of waiting for ever."""
        queue = self.events.subscribe(run["id"])
        try:
            await self.enqueue(project_id, run["id"])
            for item in first:
                yield item
            while True:
                try:
                    next_item = await asyncio.wait_for(queue.get(), STREAM_POLL_S)
                except TimeoutError:
                    now = await self.docs.get("run", project_id, run["id"])
                    if now["status"] in (*TERMINAL, "requires_action"):
                        yield f"thread.run.{now['status']}", public(now)
                        return
                    continue
                if next_item is None:
                    return
                yield next_item
        finally:
            self.events.unsubscribe(run["id"], queue)


def _dump(value: Any) -> Any:
    return value.model_dump(by_alias=True, exclude_none=True) if hasattr(value, "model_dump") else value


def _last_error(exc: Exception) -> tuple[str, str]:
    """A run's `last_error`: OpenAI's three codes (server_error, rate_limit_exceeded, invalid_prompt),
    with Homeport's own code, where it has one, kept in the message."""
    if not isinstance(exc, HomeportError):
        return "server_error", str(exc)
    message = f"{exc.message} ({exc.code})" if exc.code else exc.message
    if exc.status == 429:
        return "rate_limit_exceeded", message
    return ("invalid_prompt" if 400 <= exc.status < 500 else "server_error"), message
