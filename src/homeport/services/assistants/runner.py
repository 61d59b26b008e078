"""One pass of a run, as its job executes it: (file search, once per run) → the prompt
(instructions, retrieved sources, the thread's messages within the token budget, this run's tool
calls and outputs) → the chat service's stream, its deltas published as OpenAI's run events →
either a message (completed, or incomplete at the token limit) or function calls
(requires_action; submitting their outputs queues another pass).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ...errors import ContextLengthExceeded
from ...ids import new_id
from ...protocol.chat import ChatCompletionChunk, ChatCompletionRequest
from ...protocol.vector_stores import SearchResult
from ...storage.jobs import Jobs
from ..inference.chat import ChatPlan, ChatService
from ..inference.truncation import dropped_to_fit, message_text
from ..platform.admission import Admitter
from ..platform.usage import UsageEvent, UsageRecorder
from ..retrieval.stores import VectorStoreService
from .objects import Document
from .state import RunRecorder
from .wire import add_usage, cited, function_calls, message_document, public, store_ids, usage_of

__all__ = ["MAX_ATTEMPTS", "Runner"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # passes of a run interrupted (its process died) this often fail the run
_CANCEL_CHECK_EVERY = 16  # chunks between looks at whether the run is being cancelled


class _ThreadMessage(dict):  # type: ignore[type-arg]
    """A message from the thread's history: the ones truncation may drop (oldest first)."""


@dataclass
class _Output:
    """What a pass generated: text, or function calls assembled from their deltas."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish: str = "stop"
    message: Document | None = None
    step: Document | None = None

    def add_calls(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices:
            self.finish = choice.finish_reason or self.finish
            for call in choice.delta.tool_calls or []:
                entry = self.calls.setdefault(
                    call.index, {"id": call.id, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                fn = call.function or {}
                entry["function"]["name"] += fn.get("name") or ""
                entry["function"]["arguments"] += fn.get("arguments") or ""


class Runner:
    def __init__(
        self, recorder: RunRecorder, chat: ChatService, stores: VectorStoreService, usage: UsageRecorder,
        jobs: Jobs, admitter: Admitter | None = None,
    ) -> None:  # fmt: skip
        self._record, self.docs = recorder, recorder.docs
        self._chat, self._stores, self._usage, self._jobs = chat, stores, usage, jobs
        self._admitter = admitter  # the gateway's limits and budgets, by the key that made the run

    async def run_pass(self, project_id: str | None, run_id: str, attempt: int) -> None:
        run = await self.docs.get("run", project_id, run_id)
        if run["status"] == "cancelling":
            await self._record.finish(run, "cancelled", cancelled_at=int(time.time()))
            return
        if run["status"] == "in_progress" and attempt > 1:  # this pass's process died: run it again
            if attempt > MAX_ATTEMPTS:
                await self._record.fail(run, "server_error", f"The run was interrupted {attempt - 1} times.")
                return
            log.info("run %s: running the pass a stopped process left again", run_id)
            await self._discard_unfinished(project_id, run)
            run["status"] = "queued"
            await self.docs.save(run)
        if run["status"] != "queued" or not await self.docs.claim(run_id):
            return  # not waiting any more, or another worker claimed it
        run |= {"status": "in_progress", "started_at": run["started_at"] or int(time.time())}
        await self.docs.save(run)
        self._record.publish(run, "thread.run.in_progress", public(run))
        steps = await self.docs.list_of("step", project_id, thread_id=run["thread_id"], run_id=run_id, order="asc")
        sources = await self._file_search(project_id, run, steps)
        plan = await self._plan(run, self._request(run, await self._prompt(project_id, run, steps, sources), steps))
        if plan is not None:
            await self._generate_admitted(project_id, run, plan, sources)

    async def _discard_unfinished(self, project_id: str | None, run: Document) -> None:
        """Messages and steps a stopped process left in progress: the pass runs again from scratch."""
        for kind in ("message", "step"):
            for obj in await self.docs.list_of(kind, project_id, thread_id=run["thread_id"], status=["in_progress"]):  # type: ignore[arg-type]
                if obj.get("run_id") == run["id"] and not (kind == "step" and function_calls(obj)):
                    await self.docs.delete(obj["id"])

    # ---- the prompt ---------------------------------------------------------------------

    def _request(self, run: Document, messages: list[dict[str, Any]], steps: list[Document]) -> dict[str, Any]:
        """The chat completion request of this pass."""
        request: dict[str, Any] = {"model": run["model"], "messages": messages, "stream": True,
                                   "stream_options": {"include_usage": True}}  # fmt: skip
        functions = [t for t in run["tools"] if t["type"] == "function"]
        if functions:
            request |= {"tools": functions, "parallel_tool_calls": bool(run["parallel_tool_calls"])}
            # A forced or required tool choice binds the run's first call only; once tool outputs are
            # in, the model answers (or calls again) freely — otherwise the run could never end.
            answered = any(function_calls(step) for step in steps)
            request["tool_choice"] = "auto" if answered and run["tool_choice"] != "none" else run["tool_choice"]
        for name in ("temperature", "top_p"):
            if run.get(name) is not None:
                request[name] = run[name]
        if run.get("max_completion_tokens"):
            used = sum((s.get("usage") or {}).get("completion_tokens", 0) for s in steps)
            request["max_completion_tokens"] = max(1, run["max_completion_tokens"] - used)
        if isinstance(run["response_format"], dict) and run["response_format"].get("type") != "text":
            request["response_format"] = run["response_format"]
        return request

    async def _plan(self, run: Document, request: dict[str, Any]) -> ChatPlan | None:
        """The chat plan; with truncation `auto`, the oldest thread messages go until the prompt fits
        the context and `max_prompt_tokens` (truncation.py)."""
        messages, limit = request["messages"], run.get("max_prompt_tokens")
        droppable = [i for i, m in enumerate(messages) if isinstance(m, _ThreadMessage)]

        async def attempt(dropped: int) -> ChatPlan | None:
            gone = set(droppable[:dropped])
            kept = [m for i, m in enumerate(messages) if i not in gone]
            try:
                plan = await self._chat.plan(ChatCompletionRequest.model_validate(request | {"messages": kept}))
            except ContextLengthExceeded:
                return None
            return plan if limit is None or plan.estimate[0] <= limit else None

        most = len(droppable) - 1 if run["truncation_strategy"]["type"] == "auto" else 0
        texts = [message_text(messages[i]) for i in droppable[:most]]
        plan = await dropped_to_fit(attempt, most, partial(self._chat.token_counts, request["model"], texts))
        if plan is None:
            await self._record.finish(run, "incomplete", incomplete_details={"reason": "max_prompt_tokens"},
                                      completed_at=int(time.time()))  # fmt: skip
        return plan

    async def _prompt(
        self, project_id: str | None, run: Document, steps: list[Document], sources: list[SearchResult]
    ) -> list[dict[str, Any]]:
        system = run["instructions"] or ""
        if run.get("additional_instructions"):
            system = f"{system}\n\n{run['additional_instructions']}".strip()
        if sources:
            quoted = "\n\n".join(f"[{i}] {s.filename}:\n{s.content[0].text}" for i, s in enumerate(sources))
            system = f"{system}\n\nAnswer from these sources:\n{quoted}".strip()
        out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        history = await self.docs.list_of("message", project_id, thread_id=run["thread_id"], order="asc")
        history = [m for m in history if m["status"] == "completed"]
        keep = run["truncation_strategy"].get("last_messages")
        if run["truncation_strategy"]["type"] == "last_messages" and keep is not None:
            history = history[-keep:] if keep > 0 else []
        for m in history:
            text = "".join(p["text"]["value"] for p in m["content"] if p["type"] == "text")
            out.append(_ThreadMessage(role=m["role"], content=text))
        for step in steps:  # this run's function calls and their outputs
            calls = function_calls(step)
            if calls and all(c["function"].get("output") is not None for c in calls):
                asked = [{"id": c["id"], "type": "function", "function": _call(c)} for c in calls]
                out.append({"role": "assistant", "content": None, "tool_calls": asked})
                out += [{"role": "tool", "tool_call_id": c["id"], "content": c["function"]["output"]} for c in calls]
        return out

    async def _file_search(self, project_id: str | None, run: Document, steps: list[Document]) -> list[SearchResult]:
        """Retrieve once per run, before generating, with the latest user message as the query."""
        tool = next((t for t in run["tools"] if t["type"] == "file_search"), None)
        if tool is None:
            return []
        assistant = await self.docs.get("assistant", project_id, run["assistant_id"])
        thread = await self.docs.get("thread", project_id, run["thread_id"])
        stores = [*store_ids(assistant), *store_ids(thread)]
        if not stores:
            return []
        for step in steps:
            calls = step["step_details"].get("tool_calls") or []
            if calls and calls[0]["type"] == "file_search":  # searched in an earlier pass of this run
                return [SearchResult.model_validate(r) for r in calls[0]["file_search"].get("results_full", [])]
        history = await self.docs.list_of("message", project_id, thread_id=thread["id"], order="desc")
        query = next(("".join(p["text"]["value"] for p in m["content"]) for m in history if m["role"] == "user"), "")
        ranking = {"ranker": "default_2024_08_21", "score_threshold": 0.0}
        call: dict[str, Any] = {"id": new_id("call_", 24), "type": "file_search",
                                "file_search": {"ranking_options": ranking, "results": []}}  # fmt: skip
        step = await self._record.start_step(
            project_id, run, "tool_calls", {"type": "tool_calls", "tool_calls": [call]}
        )
        k = (tool.get("file_search") or {}).get("max_num_results", 5)
        results: list[SearchResult] = []
        if query:
            for store_id in stores:
                row = await self._stores.store_row(project_id, store_id)
                results += await self._stores.search_index.chunks(row, [query], k)
        results = sorted(results, key=lambda r: -r.score)[: min(k, 5)]
        call["file_search"]["results"] = [{"file_id": r.file_id, "file_name": r.filename, "score": r.score}
                                          for r in results]  # fmt: skip
        call["file_search"]["results_full"] = [r.model_dump() for r in results]
        await self._record.complete_step(step, {"type": "tool_calls", "tool_calls": [call]})
        return results

    # ---- generating ---------------------------------------------------------------------

    async def _generate_admitted(
        self, project_id: str | None, run: Document, plan: ChatPlan, sources: list[SearchResult]
    ) -> None:
        """Generate under the key's limits and budgets; settled and recorded with the real tokens."""
        admission = None
        if self._admitter is not None:
            admission = await self._admitter.admit_key(run.get("_key_id"), run["model"], plan.estimate)
        used = (0, 0)
        try:
            output = await self._generate(project_id, run, plan)
            usage = plan.usage
            used = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
            self._record_usage(project_id, run, used)
            await self._end_pass(project_id, run, output, usage_of(usage), sources)
        finally:
            if admission is not None:
                await admission.settle(used)

    async def _generate(self, project_id: str | None, run: Document, plan: ChatPlan) -> _Output:
        """Stream the chat service's chunks into messages and events, until done or cancelled."""
        output = _Output()
        chunks = self._chat.stream(plan)
        try:
            async for seen, chunk in _numbered(chunks):
                if seen % _CANCEL_CHECK_EVERY == 0 and await self.docs.status(run["id"]) == "cancelling":
                    break
                output.add_calls(chunk)
                for choice in chunk.choices:
                    if choice.delta.content:
                        await self._add_text(project_id, run, output, choice.delta.content)
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        return output

    async def _add_text(self, project_id: str | None, run: Document, output: _Output, text: str) -> None:
        if output.message is None:
            output.message, output.step = await self._start_message(project_id, run)
        output.text.append(text)
        part = {"index": 0, "type": "text", "text": {"value": text, "annotations": []}}
        delta = {"id": output.message["id"], "object": "thread.message.delta", "delta": {"content": [part]}}
        self._record.publish(run, "thread.message.delta", delta)

    async def _end_pass(
        self, project_id: str | None, run: Document, output: _Output, usage: dict[str, int] | None,
        sources: list[SearchResult],
    ) -> None:  # fmt: skip
        if await self.docs.status(run["id"]) == "cancelling":
            for obj in (output.message, output.step):
                if obj is not None:
                    await self.docs.save(obj | {"status": "incomplete" if obj is output.message else "cancelled"})
            await self._record.finish(run, "cancelled", cancelled_at=int(time.time()),
                                      usage=add_usage(run["usage"], usage))  # fmt: skip
        elif output.calls:
            await self._require_action(project_id, run, output, usage)
        else:
            await self._complete(project_id, run, output, usage, sources)

    async def _require_action(
        self, project_id: str | None, run: Document, output: _Output, usage: dict[str, int] | None
    ) -> None:
        if output.message is not None:  # what the model said before calling
            await self._close_message(run, output, None, [])
        calls = [output.calls[i] for i in sorted(output.calls)]
        for call in calls:
            call["function"]["output"] = None  # until submitted: the spec requires the key
        waiting = await self._record.start_step(project_id, run, "tool_calls", {"type": "tool_calls",
                                                                               "tool_calls": calls})  # fmt: skip
        waiting["usage"] = usage
        await self.docs.save(waiting)
        asked = [{"id": c["id"], "type": "function", "function": _call(c)} for c in calls]
        required = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": asked}}
        run |= {"status": "requires_action", "required_action": required, "usage": add_usage(run["usage"], usage)}
        await self.docs.save(run)
        await self._jobs.enqueue(
            "expire_run", key=f"expire-{run['id']}-{waiting['id']}", scheduled=int(run["expires_at"]) + 1,
            project_id=project_id, run_id=run["id"], timeout=60, retries=3,
        )  # fmt: skip
        self._record.publish(run, "thread.run.requires_action", public(run))

    async def _complete(
        self, project_id: str | None, run: Document, output: _Output, usage: dict[str, int] | None,
        sources: list[SearchResult],
    ) -> None:  # fmt: skip
        if output.message is None:
            output.message, output.step = await self._start_message(project_id, run)
        now = await self._close_message(run, output, usage, sources)
        total = add_usage(run["usage"], usage)
        if output.finish == "length":
            await self._record.finish(run, "incomplete", usage=total, completed_at=now,
                                      incomplete_details={"reason": "max_completion_tokens"})  # fmt: skip
        else:
            await self._record.finish(run, "completed", usage=total, completed_at=now)

    async def _close_message(
        self, run: Document, output: _Output, usage: dict[str, int] | None, sources: list[SearchResult]
    ) -> int:
        """The pass's message and its step complete (incomplete when the tokens ran out); when."""
        message, step, now = output.message, output.step, int(time.time())
        assert message is not None and step is not None
        value, annotations = cited("".join(output.text), sources)
        message |= {"status": "completed", "completed_at": now,
                    "content": [{"type": "text", "text": {"value": value, "annotations": annotations}}]}  # fmt: skip
        if output.finish == "length":
            message |= {"status": "incomplete", "incomplete_details": {"reason": "max_tokens"}, "incomplete_at": now,
                        "completed_at": None}  # fmt: skip
        await self.docs.save(message)
        self._record.publish(run, f"thread.message.{message['status']}", message)
        await self._record.complete_step(step, step["step_details"], usage)
        return now

    async def _start_message(self, project_id: str | None, run: Document) -> tuple[Document, Document]:
        message = message_document(run)
        await self.docs.add("message", project_id, message, thread_id=run["thread_id"], run_id=run["id"])
        details = {"type": "message_creation", "message_creation": {"message_id": message["id"]}}
        step = await self._record.start_step(project_id, run, "message_creation", details)
        self._record.publish(run, "thread.message.created", message)
        self._record.publish(run, "thread.message.in_progress", message)
        return message, step

    def _record_usage(self, project_id: str | None, run: Document, used: tuple[int, int]) -> None:
        prices = self._admitter.prices(run["model"]) if self._admitter is not None else None
        cost_in, cost_out = prices.split(*used) if prices is not None else (0, 0)
        self._usage.record(
            UsageEvent(
                "completions", project_id, run.get("_key_id"), run["model"], "/v1/threads/runs", 200, used[0],
                used[1], 0, 0, input_micro_usd=cost_in, output_micro_usd=cost_out,
            )
        )  # fmt: skip


def _call(call: dict[str, Any]) -> dict[str, str]:
    return {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}


async def _numbered(chunks: Any) -> Any:
    seen = 0
    async for chunk in chunks:
        seen += 1
        yield seen, chunk
