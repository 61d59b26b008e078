"""Assistant runs: queued → in_progress → requires_action | completed | incomplete | failed | cancelled.

A run executes on the process's run worker. Executing is one pass: (file search, once per run)
→ build the prompt (instructions, retrieved sources, the thread's messages within the token
budget, this run's earlier tool calls and outputs) → generate with the chat service, streaming
deltas out as OpenAI's run events → either a message (completed) or function calls
(requires_action; `submit_tool_outputs` queues the run again). Every state change is saved
before its event is published, so a client polling sees what a streaming client sees.

Runs execute as saq jobs (services/jobs.py): creating a run (or submitting its tool outputs)
enqueues one pass on the shared queue; any process's worker takes it, claims the run (queued →
in_progress, one conditional UPDATE) and heartbeats while it works. When a process dies mid-pass,
saq's sweeper sees the heartbeat stop and puts the job back in the queue; the worker that takes it
removes that pass's unfinished message and step and runs the pass again (or fails the run after
MAX_ATTEMPTS interrupted passes). No run stays `in_progress` after its process is gone, and none
runs twice. A run waiting for tool outputs gets a job scheduled at its `expires_at`, which
expires it if it is still waiting then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from saq import Queue
from saq.job import Job
from saq.types import PartialTimersDict

from ...errors import ContextLengthExceeded, HomeportError, InvalidRequest
from ...ids import new_id, sortable_id
from ...protocol.chat import ChatCompletionRequest
from ...storage.jobs import JobWorker
from ..inference.chat import ChatService
from ..platform.admission import Admitter
from ..platform.usage import UsageEvent, UsageRecorder
from ..retrieval.stores import VectorStoreService, check_metadata
from .events import RunEvents
from .objects import AssistantService, check_sampling, check_tools

__all__ = ["RunService"]

log = logging.getLogger("homeport")


TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")
ACTIVE = ("queued", "in_progress", "requires_action", "cancelling")
STREAM_POLL_S = 3.0
MAX_ATTEMPTS = 3  # passes of a run interrupted (its process died) this often fail the run


class RunService:
    def __init__(
        self,
        assistants: AssistantService,
        chat: ChatService,
        vector_stores: VectorStoreService,
        usage: UsageRecorder,
        jobs: Queue,
        *,
        admitter: Admitter | None = None,
        events: RunEvents | None = None,
        workers: int = 4,
        heartbeat_s: int = 30,
        expires_s: int = 600,
    ) -> None:
        self._assistants, self.docs = assistants, assistants.docs
        self._chat, self._stores, self._usage = chat, vector_stores, usage
        self._admitter = admitter  # the gateway's limits and budgets, by the key that made the run
        self._jobs, self._workers, self._heartbeat_s = jobs, workers, heartbeat_s
        self._expires_s = expires_s  # OpenAI's runs expire 10 minutes after they are created
        self.events = events or RunEvents()
        self._worker: JobWorker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._registry_ready: asyncio.Event | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self, ready: asyncio.Event) -> None:
        self._registry_ready = ready
        await self._jobs.connect()
        await self.events.start()
        if self._workers <= 0:
            return  # an API-only replica: other replicas' workers run the passes
        sweep_s = max(1, min(5, self._heartbeat_s // 2))
        self._worker = JobWorker(
            self._jobs,
            functions=[("run_pass", self._run_pass), ("expire_run", self._expire_run)],
            concurrency=self._workers,
            timers=PartialTimersDict(sweep=sweep_s, schedule=1, abort=1, worker_info=10),
        )
        self._worker_task = asyncio.create_task(self._worker.start())

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.stop()  # a pass cut off here goes back to the queue (saq retries it)
            assert self._worker_task is not None
            await asyncio.gather(self._worker_task, return_exceptions=True)
        await self.events.close()
        await self._jobs.disconnect()

    async def enqueue(self, project_id: str | None, run_id: str) -> None:
        """Queue a pass of the run on the shared queue."""
        await self._jobs.enqueue(
            "run_pass", project_id=project_id, run_id=run_id,
            timeout=0, heartbeat=self._heartbeat_s, retries=MAX_ATTEMPTS + 1, ttl=3600,
        )  # fmt: skip

    async def _run_pass(self, ctx: dict[str, Any], *, project_id: str | None, run_id: str) -> None:
        """The saq job: one pass of a run. Failures end the run (recorded on it), not the job."""
        job: Job = ctx["job"]
        assert self._registry_ready is not None
        beating = asyncio.create_task(self._beat(job))
        try:
            await self._registry_ready.wait()
            await self._execute(project_id, run_id, job.attempts)
        except Exception as exc:  # the run records why; the worker goes on
            log.exception("run %s failed", run_id)
            run = await self.docs.get("run", project_id, run_id)
            if run["status"] not in TERMINAL:
                code = exc.code if isinstance(exc, HomeportError) and exc.code else "server_error"
                await self._finish(
                    run, "failed", failed_at=int(time.time()), last_error={"code": code, "message": str(exc)}
                )
        finally:
            beating.cancel()
            self.events.end(run_id)

    async def _beat(self, job: Job) -> None:
        """saq's heartbeat: while this lives, the sweeper leaves the job alone."""
        while True:
            await asyncio.sleep(self._heartbeat_s / 3)
            try:
                await job.update()
            except Exception:  # the next beat tries again; several missed ones mean a sweep
                log.exception("run job heartbeat failed")

    async def _expire_run(self, ctx: dict[str, Any], *, project_id: str | None, run_id: str) -> None:
        """The saq job scheduled at a waiting run's `expires_at`."""
        run = await self.docs.get("run", project_id, run_id)
        if run["status"] == "requires_action" and run["expires_at"] <= time.time():
            await self._expire(project_id, run)

    async def _expire(self, project_id: str | None, run: dict[str, Any]) -> None:
        """A run still waiting for tool outputs at its `expires_at`: it and its step expire."""
        step = await self._waiting_step(project_id, run)
        run |= {"status": "expired", "required_action": None}
        if await self.docs.save(run, only_if_status=["requires_action"]):
            await self.docs.save(step | {"status": "expired", "expired_at": int(time.time())})
            log.info("run %s expired waiting for tool outputs", run["id"])
            self._publish(run, "thread.run.expired", _public(run))

    async def _discard_unfinished(self, project_id: str | None, run: dict[str, Any]) -> None:
        """Messages and steps a stopped process left in progress: the pass runs again from scratch."""
        for kind in ("message", "step"):
            for obj in await self.docs.list_of(kind, project_id, thread_id=run["thread_id"], status=["in_progress"]):
                if obj.get("run_id") == run["id"] and not (
                    kind == "step" and obj["type"] == "tool_calls" and _function_calls(obj)
                ):
                    await self.docs.delete(obj["id"])

    # ---- API ----------------------------------------------------------------------------

    async def create(
        self, project_id: str | None, thread: dict[str, Any], req: dict[str, Any], key_id: str | None = None
    ) -> dict[str, Any]:
        """Validate and queue a run on `thread` (stream or not, the caller decides how to follow it)."""
        assistant = await self.docs.get("assistant", project_id, req["assistant_id"], "assistant_id")
        active = await self.docs.list_of("run", project_id, thread_id=thread["id"], status=list(ACTIVE))
        if active:
            raise InvalidRequest(
                f"Thread {thread['id']} already has an active run {active[0]['id']}.", param="thread_id"
            )
        check_sampling(req)
        if req.get("tools") is not None:
            check_tools(req["tools"])
        check_metadata(req.get("metadata"))
        model = req.get("model") or assistant["model"]
        self._assistants._check_model(model)
        truncation = req.get("truncation_strategy") or {"type": "auto", "last_messages": None}
        if truncation.get("type") not in ("auto", "last_messages") or (
            truncation["type"] == "last_messages" and not isinstance(truncation.get("last_messages"), int)
        ):
            raise InvalidRequest(
                "truncation_strategy is {'type': 'auto'} or {'type': 'last_messages', 'last_messages': N}.",
                param="truncation_strategy",
            )
        for name in ("max_prompt_tokens", "max_completion_tokens"):
            value = req.get(name)
            if value is not None and (not isinstance(value, int) or value < 256):
                raise InvalidRequest(f"{name} must be at least 256.", param=name)
        for i, m in enumerate(req.get("additional_messages") or []):
            await self._assistants.add_message(project_id, thread, m, f"additional_messages.[{i}]")
        now = int(time.time())
        run = {
            "id": new_run_id(),
            "object": "thread.run",
            "created_at": now,
            "thread_id": thread["id"],
            "assistant_id": assistant["id"],
            "status": "queued",
            "required_action": None,
            "last_error": None,
            "expires_at": now + self._expires_s,
            "started_at": None,
            "cancelled_at": None,
            "failed_at": None,
            "completed_at": None,
            "incomplete_details": None,
            "model": model,
            "instructions": req.get("instructions")
            if req.get("instructions") is not None
            else (assistant.get("instructions") or ""),
            "tools": req["tools"] if req.get("tools") is not None else assistant["tools"],
            "metadata": req.get("metadata") or {},
            "usage": None,
            "temperature": req.get("temperature", assistant.get("temperature")),
            "top_p": req.get("top_p", assistant.get("top_p")),
            "max_prompt_tokens": req.get("max_prompt_tokens"),
            "max_completion_tokens": req.get("max_completion_tokens"),
            "truncation_strategy": {"type": truncation["type"], "last_messages": truncation.get("last_messages")},
            "tool_choice": req.get("tool_choice") or "auto",
            "parallel_tool_calls": req.get("parallel_tool_calls", True),
            "response_format": req.get("response_format") or assistant.get("response_format") or "auto",
            "additional_instructions": req.get("additional_instructions"),
            "_key_id": key_id,
        }
        await self.docs.add("run", project_id, run, thread_id=thread["id"], run_id=run["id"])
        return _public(run)

    async def submit_tool_outputs(
        self, project_id: str | None, thread_id: str, run_id: str, outputs: Any
    ) -> dict[str, Any]:
        run = await self.docs.get("run", project_id, run_id, "run_id")
        if run["thread_id"] != thread_id:
            raise InvalidRequest(f"No run {run_id} on thread {thread_id}.", param="run_id")
        if run["status"] == "requires_action" and run["expires_at"] <= time.time():
            await self._expire(project_id, run)  # its expiry job may not have run yet
            run = await self.docs.get("run", project_id, run_id, "run_id")
        if run["status"] != "requires_action":
            raise InvalidRequest(f"Runs in status {run['status']} do not accept tool outputs.", param="run_id")
        if not isinstance(outputs, list) or not outputs:
            raise InvalidRequest("tool_outputs is a non-empty list.", param="tool_outputs")
        wanted = {c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]}
        given: dict[str, str] = {}
        for i, out in enumerate(outputs):
            call_id = out.get("tool_call_id") if isinstance(out, dict) else None
            if call_id not in wanted:
                raise InvalidRequest(
                    f"No tool call {call_id!r} is waiting for output in this run.",
                    param=f"tool_outputs.[{i}].tool_call_id",
                )
            given[str(call_id)] = str(out.get("output") or "")
        if set(given) != wanted:
            missing = ", ".join(sorted(wanted - set(given)))
            raise InvalidRequest(f"Tool outputs are missing for: {missing}.", param="tool_outputs")
        step = await self._waiting_step(project_id, run)
        for call in step["step_details"]["tool_calls"]:
            call["function"]["output"] = given[call["id"]]
        step |= {"status": "completed", "completed_at": int(time.time())}
        await self.docs.save(step)
        run |= {"status": "queued", "required_action": None}
        await self.docs.save(run)
        return _public(run)

    async def _waiting_step(self, project_id: str | None, run: dict[str, Any]) -> dict[str, Any]:
        steps = await self.docs.list_of(
            "step", project_id, thread_id=run["thread_id"], run_id=run["id"], status=["in_progress"]
        )
        return next(s for s in steps if s["type"] == "tool_calls")

    async def cancel(self, project_id: str | None, thread_id: str, run_id: str) -> dict[str, Any]:
        run = await self.docs.get("run", project_id, run_id, "run_id")
        if run["thread_id"] != thread_id:
            raise InvalidRequest(f"No run {run_id} on thread {thread_id}.", param="run_id")
        if run["status"] in TERMINAL:
            raise InvalidRequest(f"Cannot cancel run with status '{run['status']}'.", param="run_id")
        if run["status"] in ("queued", "requires_action"):
            if run["status"] == "requires_action":
                step = await self._waiting_step(project_id, run)
                await self.docs.save(step | {"status": "cancelled", "cancelled_at": int(time.time())})
            await self._finish(run, "cancelled", cancelled_at=int(time.time()), required_action=None)
        else:
            run["status"] = "cancelling"  # the worker stops at its next token
            await self.docs.save(run, only_if_status=["in_progress"])
        return _public(await self.docs.get("run", project_id, run_id))

    # ---- execution ----------------------------------------------------------------------

    async def _finish(self, run: dict[str, Any], status: str, **fields: Any) -> None:
        run |= {"status": status, **fields}
        await self.docs.save(run)
        self._publish(run, f"thread.run.{status}", _public(run))

    def _publish(self, run: dict[str, Any], event: str, data: Any) -> None:
        self.events.publish(run["id"], event, data)

    async def _execute(self, project_id: str | None, run_id: str, attempt: int) -> None:
        run = await self.docs.get("run", project_id, run_id)
        if run["status"] == "cancelling":
            await self._finish(run, "cancelled", cancelled_at=int(time.time()))
            return
        if run["status"] == "in_progress" and attempt > 1:  # this pass's process died: run it again
            if attempt > MAX_ATTEMPTS:
                error = {"code": "server_error", "message": f"The run was interrupted {attempt - 1} times."}
                await self._finish(run, "failed", failed_at=int(time.time()), last_error=error)
                return
            log.info("run %s: running the pass a stopped process left again", run_id)
            await self._discard_unfinished(project_id, run)
            run["status"] = "queued"
            await self.docs.save(run)
        if run["status"] != "queued" or not await self.docs.claim(run_id):
            return  # not waiting any more, or another worker claimed it
        run |= {"status": "in_progress", "started_at": run["started_at"] or int(time.time())}
        await self.docs.save(run)
        self._publish(run, "thread.run.in_progress", _public(run))
        assistant = await self.docs.get("assistant", project_id, run["assistant_id"])
        thread = await self.docs.get("thread", project_id, run["thread_id"])
        steps = await self.docs.list_of("step", project_id, thread_id=run["thread_id"], run_id=run_id, order="asc")
        sources = await self._file_search(project_id, run, assistant, thread, steps)
        messages = await self._prompt(project_id, run, thread, steps, sources)
        functions = [t for t in run["tools"] if t["type"] == "function"]
        request: dict[str, Any] = {
            "model": run["model"],
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if functions:
            request |= {"tools": functions, "parallel_tool_calls": bool(run["parallel_tool_calls"])}
            # A forced or required tool choice binds the run's first call only; once tool outputs are
            # in, the model answers (or calls again) freely — otherwise the run could never end.
            answered = any(_function_calls(step) for step in steps)
            request["tool_choice"] = "auto" if answered and run["tool_choice"] != "none" else run["tool_choice"]
        for name in ("temperature", "top_p"):
            if run.get(name) is not None:
                request[name] = run[name]
        if run.get("max_completion_tokens"):
            used = sum((s.get("usage") or {}).get("completion_tokens", 0) for s in steps)
            request["max_completion_tokens"] = max(1, run["max_completion_tokens"] - used)
        if isinstance(run["response_format"], dict) and run["response_format"].get("type") != "text":
            request["response_format"] = run["response_format"]
        plan = await self._plan(run, request)
        if plan is None:
            return
        admission, prices = None, None
        if self._admitter is not None:
            prices = self._admitter.prices(run["model"])
            admission = await self._admitter.admit_key(run.get("_key_id"), run["model"], plan.estimate)
        used = (0, 0)
        try:
            used = await self._generate(project_id, run, plan, sources, prices)
        finally:
            if admission is not None:
                await admission.settle(used)

    async def _plan(self, run: dict[str, Any], request: dict[str, Any]) -> Any:
        """The chat plan; the oldest thread messages are dropped until the prompt fits."""
        while True:
            try:
                plan = self._chat.plan(ChatCompletionRequest.model_validate(request))
            except ContextLengthExceeded:
                plan = None
            limit = run.get("max_prompt_tokens")
            if plan is not None and (limit is None or plan.estimate[0] <= limit):
                return plan
            droppable = [i for i, m in enumerate(request["messages"]) if isinstance(m, _ThreadMessage)]
            if run["truncation_strategy"]["type"] != "auto" or len(droppable) <= 1:
                await self._finish(
                    run, "incomplete", incomplete_details={"reason": "max_prompt_tokens"}, completed_at=int(time.time())
                )
                return None
            del request["messages"][droppable[0]]

    async def _prompt(
        self,
        project_id: str | None,
        run: dict[str, Any],
        thread: dict[str, Any],
        steps: list[dict[str, Any]],
        sources: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        system = run["instructions"] or ""
        if run.get("additional_instructions"):
            system = f"{system}\n\n{run['additional_instructions']}".strip()
        if sources:
            quoted = "\n\n".join(f"[{i}] {s['filename']}:\n{s['content'][0]['text']}" for i, s in enumerate(sources))
            system = f"{system}\n\nAnswer from these sources:\n{quoted}".strip()
        out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        history = await self.docs.list_of("message", project_id, thread_id=thread["id"], order="asc")
        history = [m for m in history if m["status"] == "completed"]
        keep = run["truncation_strategy"].get("last_messages")
        if run["truncation_strategy"]["type"] == "last_messages" and keep is not None:
            history = history[-keep:] if keep > 0 else []
        for m in history:
            text = "".join(p["text"]["value"] for p in m["content"] if p["type"] == "text")
            out.append(_ThreadMessage(role=m["role"], content=text))
        for step in steps:  # this run's function calls and their outputs
            calls = _function_calls(step)
            if calls and all(c["function"].get("output") is not None for c in calls):
                out.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": c["id"],
                                "type": "function",
                                "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                            }
                            for c in calls
                        ],
                    }
                )
                out += [{"role": "tool", "tool_call_id": c["id"], "content": c["function"]["output"]} for c in calls]
        return out

    async def _file_search(
        self,
        project_id: str | None,
        run: dict[str, Any],
        assistant: dict[str, Any],
        thread: dict[str, Any],
        steps: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        """Retrieve once per run, before generating, with the latest user message as the query."""
        tool = next((t for t in run["tools"] if t["type"] == "file_search"), None)
        store_ids = [*_store_ids(assistant), *_store_ids(thread)]
        if tool is None or not store_ids:
            return []
        done = next(
            (
                s
                for s in steps
                if s["type"] == "tool_calls"
                and s["step_details"]["tool_calls"]
                and s["step_details"]["tool_calls"][0]["type"] == "file_search"
            ),
            None,
        )
        if done is not None:
            return done["step_details"]["tool_calls"][0]["file_search"].get("results_full", [])
        history = await self.docs.list_of("message", project_id, thread_id=thread["id"], order="desc")
        query = next(("".join(p["text"]["value"] for p in m["content"]) for m in history if m["role"] == "user"), "")
        call: dict[str, Any] = {
            "id": new_id("call_", 24),
            "type": "file_search",
            "file_search": {"ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0}, "results": []},
        }
        step = await self._step(project_id, run, "tool_calls", {"type": "tool_calls", "tool_calls": [call]})
        k = (tool.get("file_search") or {}).get("max_num_results", 5)
        results: list[dict[str, Any]] = []
        if query:
            for store_id in store_ids:
                row = await self._stores.store_row(project_id, store_id)
                results += await self._stores.search_chunks(row, [query], k, None, 0.0)
        results = sorted(results, key=lambda r: -r["score"])[: min(k, 5)]
        call["file_search"]["results"] = [
            {"file_id": r["file_id"], "file_name": r["filename"], "score": r["score"]} for r in results
        ]
        call["file_search"]["results_full"] = results
        await self._complete_step(step, {"type": "tool_calls", "tool_calls": [call]})
        return results

    async def _step(
        self, project_id: str | None, run: dict[str, Any], kind: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        step = {
            "object": "thread.run.step",
            "assistant_id": run["assistant_id"],
            "thread_id": run["thread_id"],
            "run_id": run["id"],
            "type": kind,
            "status": "in_progress",
            "step_details": details,
            "last_error": None,
            "expired_at": None,
            "cancelled_at": None,
            "failed_at": None,
            "completed_at": None,
            "metadata": {},
            "usage": None,
        }
        await self.docs.add("step", project_id, step, thread_id=run["thread_id"], run_id=run["id"])
        self._publish(run, "thread.run.step.created", _public_step(step))
        self._publish(run, "thread.run.step.in_progress", _public_step(step))
        return step

    async def _complete_step(self, step: dict[str, Any], details: dict[str, Any], usage: Any = None) -> None:
        step |= {"status": "completed", "completed_at": int(time.time()), "step_details": details, "usage": usage}
        await self.docs.save(step)
        self.events.publish(step["run_id"], "thread.run.step.completed", _public_step(step))

    async def _generate(
        self, project_id: str | None, run: dict[str, Any], plan: Any, sources: list[dict], prices: Any
    ) -> tuple[int, int]:
        """Generate one pass; returns the (prompt, completion) tokens it used."""
        message: dict[str, Any] | None = None
        step: dict[str, Any] | None = None
        text: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish = "stop"
        chunks = self._chat.stream(plan)
        seen = 0
        try:
            async for chunk in chunks:
                seen += 1
                if seen % 16 == 0:
                    if await self.docs.status(run["id"]) == "cancelling":
                        break
                for choice in chunk.choices:
                    delta = choice.delta
                    finish = choice.finish_reason or finish
                    for call in delta.tool_calls or []:
                        entry = calls.setdefault(
                            call.index, {"id": call.id, "type": "function", "function": {"name": "", "arguments": ""}}
                        )
                        fn = call.function or {}
                        entry["function"]["name"] += fn.get("name") or ""
                        entry["function"]["arguments"] += fn.get("arguments") or ""
                    if delta.content:
                        if message is None:
                            message, step = await self._start_message(project_id, run)
                        text.append(delta.content)
                        self._publish(
                            run,
                            "thread.message.delta",
                            {
                                "id": message["id"],
                                "object": "thread.message.delta",
                                "delta": {
                                    "content": [
                                        {
                                            "index": 0,
                                            "type": "text",
                                            "text": {"value": delta.content, "annotations": []},
                                        }
                                    ]
                                },
                            },
                        )
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        usage = _usage(plan.usage)
        used = (plan.usage.prompt_tokens, plan.usage.completion_tokens) if plan.usage else (0, 0)
        self._record_usage(project_id, run, used, prices)
        if await self.docs.status(run["id"]) == "cancelling":
            for obj in (message, step):
                if obj is not None:
                    await self.docs.save(obj | {"status": "incomplete" if obj is message else "cancelled"})
            await self._finish(run, "cancelled", cancelled_at=int(time.time()), usage=_add(run["usage"], usage))
            return used
        if calls:
            details: dict[str, Any] = {"type": "tool_calls", "tool_calls": [calls[i] for i in sorted(calls)]}
            for call in details["tool_calls"]:
                call["function"]["output"] = None  # until submitted: the spec requires the key
            waiting = await self._step(project_id, run, "tool_calls", details)
            waiting["usage"] = usage
            await self.docs.save(waiting)
            required = {
                "type": "submit_tool_outputs",
                "submit_tool_outputs": {
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                        }
                        for c in details["tool_calls"]
                    ]
                },
            }
            run |= {"status": "requires_action", "required_action": required, "usage": _add(run["usage"], usage)}
            await self.docs.save(run)
            await self._jobs.enqueue(
                "expire_run", key=f"expire-{run['id']}-{waiting['id']}", scheduled=int(run["expires_at"]) + 1,
                project_id=project_id, run_id=run["id"], timeout=60, retries=3,
            )  # fmt: skip
            self._publish(run, "thread.run.requires_action", _public(run))
            return used
        if message is None:
            message, step = await self._start_message(project_id, run)
        assert step is not None
        value, annotations = _cited("".join(text), sources)
        message |= {
            "status": "completed",
            "completed_at": int(time.time()),
            "content": [{"type": "text", "text": {"value": value, "annotations": annotations}}],
        }
        if finish == "length":
            message |= {
                "status": "incomplete",
                "incomplete_details": {"reason": "max_tokens"},
                "incomplete_at": int(time.time()),
                "completed_at": None,
            }
        await self.docs.save(message)
        self._publish(run, f"thread.message.{message['status']}", message)
        await self._complete_step(step, step["step_details"], usage)
        total = _add(run["usage"], usage)
        if finish == "length":
            await self._finish(
                run,
                "incomplete",
                usage=total,
                completed_at=int(time.time()),
                incomplete_details={"reason": "max_completion_tokens"},
            )
        else:
            await self._finish(run, "completed", usage=total, completed_at=int(time.time()))
        return used

    async def _start_message(self, project_id: str | None, run: dict[str, Any]) -> tuple[dict, dict]:
        message = {
            "object": "thread.message",
            "thread_id": run["thread_id"],
            "status": "in_progress",
            "incomplete_details": None,
            "completed_at": None,
            "incomplete_at": None,
            "role": "assistant",
            "content": [],
            "assistant_id": run["assistant_id"],
            "run_id": run["id"],
            "attachments": [],
            "metadata": {},
        }
        await self.docs.add("message", project_id, message, thread_id=run["thread_id"], run_id=run["id"])
        step = await self._step(
            project_id,
            run,
            "message_creation",
            {"type": "message_creation", "message_creation": {"message_id": message["id"]}},
        )
        self._publish(run, "thread.message.created", message)
        self._publish(run, "thread.message.in_progress", message)
        return message, step

    def _record_usage(self, project_id: str | None, run: dict[str, Any], used: tuple[int, int], prices: Any) -> None:
        cost_in, cost_out = prices.split(*used) if prices is not None else (0, 0)
        self._usage.record(
            UsageEvent(
                "completions", project_id, run.get("_key_id"), run["model"], "/v1/threads/runs", 200, used[0],
                used[1], 0, 0, input_micro_usd=cost_in, output_micro_usd=cost_out,
            )
        )  # fmt: skip

    async def stream(
        self, project_id: str | None, run: dict[str, Any], first: list[tuple[str, Any]]
    ) -> AsyncIterator[tuple[str, Any]]:
        """Events of a run from `first` on, until it stops; the run must be queued after subscribing.

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
                        yield f"thread.run.{now['status']}", _public(now)
                        return
                    continue
                if next_item is None:
                    return
                yield next_item
        finally:
            self.events.unsubscribe(run["id"], queue)


class _ThreadMessage(dict):  # type: ignore[type-arg]
    """A message from the thread's history: the ones truncation may drop (oldest first)."""


def new_run_id() -> str:
    return sortable_id("run_")


def _store_ids(obj: dict[str, Any]) -> list[str]:
    return list(((obj.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or [])


def _function_calls(step: dict[str, Any]) -> list[dict[str, Any]]:
    if step.get("type") != "tool_calls":
        return []
    return [c for c in step["step_details"]["tool_calls"] if c["type"] == "function"]


def _usage(usage: Any) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def _add(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int] | None:
    if a is None or b is None:
        return a or b
    return {k: a[k] + b[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def _cited(text: str, sources: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The answer with a citation marker per source file (OpenAI writes `【i:j†name】` markers)."""
    annotations = []
    seen: list[str] = []
    for s in sources:
        if s["file_id"] not in seen:
            seen.append(s["file_id"])
    value = text.rstrip()
    for i, file_id in enumerate(seen[:3]):
        name = next(s["filename"] for s in sources if s["file_id"] == file_id)
        marker = f"【{i}:0†{name}】"
        start = len(value)
        value += marker
        annotations.append(
            {
                "type": "file_citation",
                "text": marker,
                "start_index": start,
                "end_index": start + len(marker),
                "file_citation": {"file_id": file_id},
            }
        )
    return value, annotations


def _public(run: dict[str, Any]) -> dict[str, Any]:
    """The run as the API shows it (without what Homeport keeps for itself)."""
    return {k: v for k, v in run.items() if k != "additional_instructions" and not k.startswith("_")}


def _public_step(step: dict[str, Any]) -> dict[str, Any]:
    if step["type"] != "tool_calls":
        return step
    calls = []
    for c in step["step_details"]["tool_calls"]:
        if c["type"] == "file_search":
            c = c | {"file_search": {k: v for k, v in c["file_search"].items() if k != "results_full"}}
        calls.append(c)
    return step | {"step_details": {"type": "tool_calls", "tool_calls": calls}}
