"""Run state changes: each is saved before its event is published, so a client polling a run sees
what a client streaming it sees."""

from __future__ import annotations

import logging
import time
from typing import Any

from .events import RunEvents
from .objects import Document, Documents
from .wire import public, public_step, step_document

__all__ = ["RunRecorder", "TERMINAL"]

log = logging.getLogger(__name__)

TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")


class RunRecorder:
    def __init__(self, docs: Documents, events: RunEvents) -> None:
        self.docs, self.events = docs, events

    def publish(self, run: Document, event: str, data: Any) -> None:
        self.events.publish(run["id"], event, data)

    async def finish(self, run: Document, status: str, **fields: Any) -> None:
        run |= {"status": status, **fields}
        await self.docs.save(run)
        self.publish(run, f"thread.run.{status}", public(run))

    async def fail(self, run: Document, code: str, message: str) -> None:
        await self.finish(run, "failed", failed_at=int(time.time()), last_error={"code": code, "message": message})

    async def start_step(self, project_id: str | None, run: Document, kind: str, details: dict[str, Any]) -> Document:
        step = step_document(run, kind, details)
        await self.docs.add("step", project_id, step, thread_id=run["thread_id"], run_id=run["id"])
        self.publish(run, "thread.run.step.created", public_step(step))
        self.publish(run, "thread.run.step.in_progress", public_step(step))
        return step

    async def complete_step(self, step: Document, details: dict[str, Any], usage: Any = None) -> None:
        step |= {"status": "completed", "completed_at": int(time.time()), "step_details": details, "usage": usage}
        await self.docs.save(step)
        self.events.publish(step["run_id"], "thread.run.step.completed", public_step(step))

    async def waiting_step(self, project_id: str | None, run: Document) -> Document:
        """The tool-calls step of a run waiting for tool outputs."""
        steps = await self.docs.list_of(
            "step", project_id, thread_id=run["thread_id"], run_id=run["id"], status=["in_progress"]
        )
        return next(s for s in steps if s["type"] == "tool_calls")

    async def expire(self, project_id: str | None, run: Document) -> None:
        """A run still waiting for tool outputs at its `expires_at`: it and its step expire."""
        step = await self.waiting_step(project_id, run)
        run |= {"status": "expired", "required_action": None}
        if await self.docs.save(run, only_if_status=["requires_action"]):
            await self.docs.save(step | {"status": "expired", "expired_at": int(time.time())})
            log.info("run %s expired waiting for tool outputs", run["id"])
            self.publish(run, "thread.run.expired", public(run))
