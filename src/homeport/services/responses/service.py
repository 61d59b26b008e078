"""The Responses API: a request's items (after its previous response's or its conversation's)
become a chat completion on the local engine; its stream becomes the response's output items
and events (streaming.py); a stored response is what the next one continues from.

    plan:   context (previous_response_id | conversation) + input → items → chat messages (+
            instructions, file-search sources) → the chat service's plan (the token estimate)
    stream: chat chunks → output items and events → saved (store) and appended (conversation)
            before the final event, so whoever reads it next finds it
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ...errors import ContextLengthExceeded, HomeportError, InvalidRequest, UnsupportedParameter
from ...ids import new_id
from ...protocol.chat import ChatCompletionChunk, ChatCompletionRequest
from ...protocol.common import Usage
from ...protocol.responses import (
    AllowedTools,
    FileSearchTool,
    FunctionTool,
    NamedFunction,
    ResponseCreate,
)
from ...protocol.vector_stores import SearchResult
from ..inference.chat import ChatPlan, ChatService
from ..inference.relay import Raw, RelayPlan, UpstreamService
from ..inference.truncation import dropped_to_fit, message_text
from ..kit import Kit
from .background import Background
from .items import Item, normalise, to_messages, user_text
from .retention import Retention
from .store import ConversationStore, ResponseStore
from .streaming import Events, Output

__all__ = ["OverChat", "ResponsePlan", "ResponseService"]

_PARAMS = {"messages": "input", "max_completion_tokens": "max_output_tokens", "response_format": "text.format"}


class OverChat:
    """A plan carried out as a chat completion: its estimate and usage are the chat plan's."""

    chat: ChatPlan | RelayPlan

    @property
    def estimate(self) -> tuple[int, int]:
        return self.chat.estimate

    @property
    def usage(self) -> Usage | None:
        return self.chat.usage


@dataclass
class ResponsePlan(OverChat):
    request: ResponseCreate
    project_id: str | None
    key_id: str | None
    chat: ChatPlan | RelayPlan
    response: dict[str, Any]
    inputs: list[Item]
    history: list[Item]
    search: Item | None = None
    sources: list[SearchResult] = field(default_factory=list)


class ResponseService:
    def __init__(self, kit: Kit) -> None:
        self.registry, self._stores = kit.registry, kit.vector_stores
        self._chat = ChatService(kit.registry)
        self._relay = UpstreamService("/chat/completions", kit.registry, kit.pools)  # models served upstream
        self.responses, self.conversations = ResponseStore(kit.db), ConversationStore(kit.db)
        self.background = Background(self, kit.jobs, kit.admitter, kit.usage)
        self.retention = Retention(kit.db, kit.jobs)

    async def start(self) -> None:
        await self.retention.start()

    # ---- planning -----------------------------------------------------------------------

    async def plan(self, req: ResponseCreate, project_id: str | None, key_id: str | None = None) -> ResponsePlan:
        _refuse_unsupported(req)
        history = await self._context(req, project_id)
        inputs = normalise(req.input, {item["id"]: item for item in history})
        if not inputs:
            raise InvalidRequest("Missing required parameter: 'input'.", param="input")
        search, sources = await self._file_search(req, project_id, history + inputs)
        messages = to_messages(history + inputs)
        chat = await self._chat_plan(req, messages, _system(req.instructions, sources), len(to_messages(history)))
        response = _skeleton(req, chat)
        return ResponsePlan(req, project_id, key_id, chat, response, inputs, history, search, sources)

    async def _context(self, req: ResponseCreate, project_id: str | None) -> list[Item]:
        """The items this response continues: its previous response's, or its conversation's."""
        if req.previous_response_id is not None and req.conversation is not None:
            raise InvalidRequest("Mutually exclusive parameters: give 'previous_response_id' or 'conversation', "
                                 "not both.", param="previous_response_id")  # fmt: skip
        if req.previous_response_id is not None:
            return await self.responses.context(project_id, req.previous_response_id, "previous_response_id")
        if req.conversation_id is not None:
            return await self.conversations.items(project_id, req.conversation_id, param="conversation")
        return []

    async def _chat_plan(
        self, req: ResponseCreate, messages: list[dict[str, Any]], system: str | None, droppable: int
    ) -> ChatPlan | RelayPlan:
        """The chat plan (the local engine's, or the upstream relay's for a model served elsewhere);
        with truncation `auto`, the oldest context messages go until the prompt fits (truncation.py)."""
        body, refused = _chat_request(req), list[ContextLengthExceeded]()
        instructions = [{"role": "system", "content": system}] if system else []

        async def attempt(dropped: int) -> ChatPlan | RelayPlan | None:
            try:
                request = ChatCompletionRequest.model_validate(body | {"messages": instructions + messages[dropped:]})
                if self._relay.handles(req.model):
                    return await self._relay.plan(request)
                return await self._chat.plan(request)
            except ContextLengthExceeded as exc:
                refused.append(exc)
                return None
            except HomeportError as exc:
                raise _renamed(exc) from None

        most = min(droppable, len(messages) - 1) if req.truncation == "auto" else 0
        sizes = partial(self._chat.token_counts, req.model, [message_text(m) for m in messages[:most]])
        plan: ChatPlan | RelayPlan | None = await dropped_to_fit(attempt, most, sizes)
        if plan is None:
            raise _renamed(refused[-1]) from None
        return plan

    async def _file_search(
        self, req: ResponseCreate, project_id: str | None, items: list[Item]
    ) -> tuple[Item | None, list[SearchResult]]:
        """file_search runs before generating, with the latest user message as the query."""
        tool = next((t for t in req.tools or [] if isinstance(t, FileSearchTool)), None)
        if tool is None or req.tool_choice == "none":
            return None, []
        query = user_text(items)
        ranking = tool.ranking_options
        results: list[SearchResult] = []
        for store_id in tool.vector_store_ids:
            row = await self._stores.store_row(project_id, store_id)
            if query:
                results += await self._stores.search_index.chunks(
                    row, [query], tool.max_num_results, tool.filters, ranking.score_threshold if ranking else 0.0,
                    hybrid=ranking is None or ranking.ranker != "none",
                )  # fmt: skip
        results = sorted(results, key=lambda r: -r.score)[: tool.max_num_results]
        wanted = "file_search_call.results" in (req.include or [])
        shown = [{"file_id": r.file_id, "filename": r.filename, "score": r.score, "attributes": r.attributes,
                  "text": r.content[0].text} for r in results] if wanted else None  # fmt: skip
        item = {"type": "file_search_call", "id": new_id("fs_", 24), "status": "completed", "queries": [query],
                "results": shown}  # fmt: skip
        return item, results

    # ---- running ------------------------------------------------------------------------

    async def create(self, plan: ResponsePlan) -> Raw:
        if plan.request.background:  # generated later by a job; metered then
            return Raw(await self.background.queue(plan), usage=Usage.of(0, 0))
        final: dict[str, Any] = {}
        async for event in self.stream(plan):
            final = event.data.get("response", final)
        return Raw(final, usage=plan.usage)

    async def stream(self, plan: ResponsePlan) -> AsyncIterator[Raw]:
        if plan.request.background:  # generated by a job; its events are followed from the database
            queued = await self.background.queue(plan)
            plan.chat.usage = Usage.of(0, 0)  # metered by the job
            async for event in self.background.follow(plan.project_id, queued["id"], None):
                yield event
            return
        chunks = self._chunks(plan.chat)
        first = await anext(chunks)  # the engine has taken the request: errors so far are HTTP errors
        ev, response = Events(), plan.response
        req = plan.request
        output = Output(ev, response["output"], bool(req.top_logprobs) or "message.output_text.logprobs" in
                        (req.include or []))  # fmt: skip
        yield ev("response.created", response=_snapshot(response))
        yield ev("response.in_progress", response=_snapshot(response))
        if plan.search is not None:
            for event in output.searched(plan.search):
                yield event
        finish = "stop"
        try:
            async for chunk in _prepend(first, chunks):
                for choice in chunk.choices:
                    for event in output.feed(choice):
                        yield event
                    finish = choice.finish_reason or finish
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        incomplete = finish == "length"
        for event in output.close(incomplete, _citations(plan.sources, len(output.text))):
            yield event
        _finish(response, plan.usage, incomplete)
        await self._keep(plan, response)
        yield ev("response.incomplete" if incomplete else "response.completed", response=response)

    async def _chunks(self, plan: ChatPlan | RelayPlan) -> AsyncIterator[ChatCompletionChunk]:
        """Chat chunks from the local engine, or from the upstream server (its JSON, parsed)."""
        if isinstance(plan, ChatPlan):
            async for chunk in self._chat.stream(plan):
                yield chunk
            return
        relayed = self._relay.stream(plan)
        try:
            async for raw in relayed:
                yield ChatCompletionChunk.model_validate(raw.data)
        finally:
            await relayed.aclose()  # type: ignore[attr-defined]

    async def _keep(self, plan: ResponsePlan, response: dict[str, Any]) -> None:
        """Store the response (unless store is false) and add its items to its conversation."""
        if response["store"]:
            context = plan.history + plan.inputs + response["output"]
            await self.responses.save(plan.project_id, response, plan.inputs, context)
        if plan.request.conversation_id is not None:
            await self.conversations.append(plan.request.conversation_id, plan.inputs + response["output"])

    async def input_tokens(self, req: ResponseCreate, project_id: str | None) -> int:
        """What `usage.input_tokens` of this request would be."""
        return (await self.plan(req, project_id)).estimate[0]


# ---- the request, in chat's terms ---------------------------------------------------------


def _refuse_unsupported(req: ResponseCreate) -> None:
    for i, tool in enumerate(req.tools or []):
        if not isinstance(tool, FunctionTool | FileSearchTool):
            raise UnsupportedParameter(f"tools.[{i}].type", f"Homeport has no built-in '{tool.type}' tool.")
    if req.reasoning and req.reasoning.get("effort") is not None:
        raise UnsupportedParameter("reasoning", "The local models do not reason in a separate channel.")
    if req.prompt is not None:
        raise UnsupportedParameter("prompt", "Stored prompt templates are not available.")
    if req.background and req.store is False:
        raise InvalidRequest("A background response must be stored: leave 'store' true.", param="store")


def _chat_request(req: ResponseCreate) -> dict[str, Any]:
    functions = [t for t in req.tools or [] if isinstance(t, FunctionTool)]
    choice = req.tool_choice
    if isinstance(choice, AllowedTools):
        allowed = {t.get("name") for t in choice.tools if t.get("type") == "function"}
        functions, choice = [t for t in functions if t.name in allowed], choice.mode  # type: ignore[assignment]
    body: dict[str, Any] = {
        "model": req.model, "stream": True, "stream_options": {"include_usage": True},
        "temperature": req.temperature, "top_p": req.top_p, "max_completion_tokens": req.max_output_tokens,
        "user": req.user, "safety_identifier": req.safety_identifier, "prompt_cache_key": req.prompt_cache_key,
    }  # fmt: skip
    if req.top_logprobs is not None or "message.output_text.logprobs" in (req.include or []):
        body |= {"logprobs": True, "top_logprobs": req.top_logprobs or 0}
    if functions:
        body["tools"] = [{"type": "function", "function": t.model_dump(exclude={"type"}, exclude_none=True)}
                         for t in functions]  # fmt: skip
        body["parallel_tool_calls"] = req.parallel_tool_calls
        if isinstance(choice, NamedFunction):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif isinstance(choice, str):
            body["tool_choice"] = choice
    fmt = req.text.format if req.text else None
    if fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        schema = fmt.model_dump(by_alias=True, exclude={"type"}, exclude_none=True)
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    return {k: v for k, v in body.items() if v is not None}


def _system(instructions: str | None, sources: list[SearchResult]) -> str | None:
    system = instructions or ""
    if sources:
        quoted = "\n\n".join(f"[{i}] {s.filename}:\n{s.content[0].text}" for i, s in enumerate(sources))
        system = f"{system}\n\nAnswer from these sources:\n{quoted}".strip()
    return system or None


def _renamed(exc: HomeportError) -> HomeportError:
    """A chat error, named in the Responses API's terms (`input`, not `messages`)."""
    if exc.param:
        head, _, rest = exc.param.partition(".")
        if head in _PARAMS:
            exc.param = _PARAMS[head] + (f".{rest}" if rest and head != "response_format" else "")
    return exc


# ---- the response object ------------------------------------------------------------------


def _skeleton(req: ResponseCreate, chat: ChatPlan | RelayPlan) -> dict[str, Any]:
    tools = [_tool(t) for t in req.tools or []]
    choice = req.tool_choice if isinstance(req.tool_choice, str) or req.tool_choice is None else (
        req.tool_choice.model_dump(exclude_none=True))  # fmt: skip
    fmt = req.text.format.model_dump(by_alias=True, exclude_none=True) if req.text and req.text.format else None
    conversation = req.conversation_id
    return {
        "id": new_id("resp_", 40), "object": "response", "created_at": int(time.time()), "status": "in_progress",
        "completed_at": None, "error": None, "incomplete_details": None, "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens, "max_tool_calls": req.max_tool_calls, "model": req.model,
        "output": [], "parallel_tool_calls": req.parallel_tool_calls is not False,
        "previous_response_id": req.previous_response_id,
        "conversation": {"id": conversation} if conversation else None,
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": req.store is not False,
        "temperature": _sampled(chat, "temperature", req.temperature), "top_p": _sampled(chat, "top_p", req.top_p),
        "top_logprobs": req.top_logprobs or 0,
        "text": {"format": fmt or {"type": "text"}, "verbosity": (req.text and req.text.verbosity) or "medium"},
        "tool_choice": choice or "auto", "tools": tools, "truncation": req.truncation or "disabled",
        "safety_identifier": req.safety_identifier, "prompt_cache_key": req.prompt_cache_key,
        "metadata": req.metadata or {}, "background": False,
    } | ({"user": req.user} if req.user is not None else {})  # fmt: skip


def _sampled(chat: ChatPlan | RelayPlan, name: str, asked: float | None) -> float:
    """The temperature or top_p used: the local engine's (model defaults applied), else as asked."""
    return getattr(chat.sampling, name) if isinstance(chat, ChatPlan) else (1.0 if asked is None else asked)


def _tool(tool: Any) -> dict[str, Any]:
    if isinstance(tool, FunctionTool):
        return {"type": "function", "name": tool.name, "description": tool.description,
                "parameters": tool.parameters, "strict": tool.strict}  # fmt: skip
    return tool.model_dump(mode="json", exclude_none=True)


def _snapshot(response: dict[str, Any]) -> dict[str, Any]:
    return response | {"output": list(response["output"])}


def _finish(response: dict[str, Any], usage: Usage | None, incomplete: bool) -> None:
    prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    cached = usage.prompt_tokens_details.cached_tokens if usage and usage.prompt_tokens_details else 0
    response |= {
        "status": "incomplete" if incomplete else "completed",
        "completed_at": None if incomplete else int(time.time()),
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "usage": {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
                  "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": prompt + completion},
    }  # fmt: skip


def _citations(sources: list[SearchResult], end: int) -> list[dict[str, Any]]:
    """A file_citation for each source file (at most 3), at the end of the answer."""
    seen: dict[str, str] = {}
    for s in sources:
        seen.setdefault(s.file_id, s.filename)
    return [{"type": "file_citation", "file_id": f, "filename": name, "index": end}
            for f, name in list(seen.items())[:3]]  # fmt: skip


async def _prepend(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item
