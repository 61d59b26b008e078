"""Assistants, threads and messages (runs are in runs.py). Requests arrive typed
(protocol/assistants.py); what pydantic cannot say about them is checked here."""

from __future__ import annotations

import time

from ...errors import InvalidRequest, UnsupportedParameter
from ...protocol.assistants import (
    AssistantCreate,
    AssistantModify,
    AssistantTool,
    CodeInterpreterTool,
    MessageCreate,
    ThreadCreate,
    ThreadModify,
    ToolResources,
)
from ...protocol.vector_stores import ExpiresAfter, VectorStoreCreate
from ..inference.registry import ModelRegistry
from ..retrieval.stores import VectorStoreService
from .objects import Document, Documents

__all__ = ["AssistantService", "check_tools", "text_parts"]

_WRITING = ["queued", "in_progress", "cancelling"]  # runs that may still write to their thread


def check_tools(tools: list[AssistantTool] | None, param: str = "tools") -> list[dict]:
    """The tools as stored; code_interpreter is refused (Homeport runs no code)."""
    for i, tool in enumerate(tools or []):
        if isinstance(tool, CodeInterpreterTool):
            raise UnsupportedParameter(f"{param}.[{i}].type", "Homeport does not run code: the code_interpreter "
                                                              "tool is not supported.")  # fmt: skip
    return [tool.model_dump(exclude_none=True) for tool in tools or []]


def text_parts(m: MessageCreate, param: str) -> list[dict]:
    """A message's content as wire parts: [{"type": "text", "text": {"value", "annotations"}}]."""
    if isinstance(m.content, str):
        return [{"type": "text", "text": {"value": m.content, "annotations": []}}]
    parts = []
    for i, part in enumerate(m.content):
        if part.type != "text":
            raise InvalidRequest(f"Only text parts are supported (got {part.type!r}); the local models read no "
                                 "images.", param=f"{param}content.[{i}]")  # fmt: skip
        parts.append({"type": "text", "text": {"value": part.text, "annotations": []}})  # type: ignore[union-attr]
    return parts


class AssistantService:
    def __init__(self, docs: Documents, registry: ModelRegistry, vector_stores: VectorStoreService) -> None:
        self.docs, self._registry, self._stores = docs, registry, vector_stores

    def check_model(self, model: str, param: str = "model") -> str:
        if self._registry.config(model, param=param).kind != "chat":
            raise InvalidRequest(f"The model `{model}` is not a chat model.", param=param)
        return model

    async def tool_resources(
        self, project_id: str | None, resources: ToolResources | None, param: str = "tool_resources"
    ) -> dict:
        if resources is None:
            return {}
        if resources.code_interpreter is not None and resources.code_interpreter.file_ids:
            raise InvalidRequest("The code_interpreter tool is not supported.", param=f"{param}.code_interpreter")
        search = resources.file_search
        ids = list(search.vector_store_ids or []) if search else []
        for store_id in ids:
            await self._stores.retrieve(project_id, store_id)  # 404 if not this project's
        for spec in (search.vector_stores if search else None) or []:
            if ids:
                raise InvalidRequest("Give vector_store_ids or vector_stores, not both.", param=f"{param}.file_search")
            new = VectorStoreCreate(file_ids=spec.file_ids, chunking_strategy=spec.chunking_strategy,
                                    metadata=spec.metadata)  # fmt: skip
            ids.append((await self._stores.create(project_id, new)).id)
        return {"file_search": {"vector_store_ids": ids}} if ids else {}

    # ---- assistants ---------------------------------------------------------------------

    async def create_assistant(self, project_id: str | None, req: AssistantCreate) -> Document:
        body = {
            "object": "assistant",
            "name": req.name,
            "description": req.description,
            "model": self.check_model(req.model),
            "instructions": req.instructions,
            "tools": check_tools(req.tools),
            "tool_resources": await self.tool_resources(project_id, req.tool_resources),
            "metadata": req.metadata or {},
            "temperature": req.temperature,
            "top_p": req.top_p,
            "response_format": _format(req.response_format or "auto"),
        }
        return await self.docs.add("assistant", project_id, body)

    async def modify_assistant(self, project_id: str | None, assistant_id: str, req: AssistantModify) -> Document:
        body = await self.docs.get("assistant", project_id, assistant_id, "assistant_id")
        for name in req.model_fields_set:
            value = getattr(req, name)
            if name == "model" and value is not None:
                value = self.check_model(value)
            elif name == "tools":
                value = check_tools(value)
            elif name == "tool_resources":
                value = await self.tool_resources(project_id, value)
            elif name == "metadata":
                value = value or {}
            elif name == "response_format":
                value = _format(value or "auto")
            body[name] = value
        await self.docs.save(body)
        return body

    # ---- threads and messages -----------------------------------------------------------

    async def create_thread(self, project_id: str | None, req: ThreadCreate) -> Document:
        resources = await self.tool_resources(project_id, req.tool_resources)
        messages = req.messages or []
        for i, m in enumerate(messages):
            _check_message(m, f"messages.[{i}].")
        thread = await self.docs.add(
            "thread", project_id, {"object": "thread", "tool_resources": resources, "metadata": req.metadata or {}}
        )
        for i, m in enumerate(messages):
            await self.add_message(project_id, thread, m, f"messages.[{i}].")
        return thread

    async def modify_thread(self, project_id: str | None, thread_id: str, req: ThreadModify) -> Document:
        thread = await self.docs.get("thread", project_id, thread_id, "thread_id")
        if "metadata" in req.model_fields_set:
            thread["metadata"] = req.metadata or {}
        if "tool_resources" in req.model_fields_set:
            thread["tool_resources"] = await self.tool_resources(project_id, req.tool_resources)
        await self.docs.save(thread)
        return thread

    async def create_message(self, project_id: str | None, thread_id: str, m: MessageCreate) -> Document:
        thread = await self.docs.get("thread", project_id, thread_id, "thread_id")
        runs = await self.docs.list_of("run", project_id, thread_id=thread_id, status=_WRITING)
        if runs:
            raise InvalidRequest(f"Can't add messages to {thread_id} while a run {runs[0]['id']} is active.",
                                 param="thread_id")  # fmt: skip
        return await self.add_message(project_id, thread, m)

    async def add_message(
        self, project_id: str | None, thread: Document, m: MessageCreate, param: str = ""
    ) -> Document:
        _check_message(m, param)
        attachments = [a.model_dump() for a in m.attachments or []]
        if attachments:
            await self._attach_to_thread(project_id, thread, [a["file_id"] for a in attachments])
        body = {
            "object": "thread.message",
            "thread_id": thread["id"],
            "status": "completed",
            "incomplete_details": None,
            "completed_at": int(time.time()),
            "incomplete_at": None,
            "role": m.role,
            "content": text_parts(m, param),
            "assistant_id": None,
            "run_id": None,
            "attachments": attachments,
            "metadata": m.metadata or {},
        }
        return await self.docs.add("message", project_id, body, thread_id=thread["id"])

    async def _attach_to_thread(self, project_id: str | None, thread: Document, file_ids: list[str]) -> None:
        """Attached files go to the thread's vector store, made on first use (OpenAI does the same)."""
        search = thread.setdefault("tool_resources", {}).setdefault("file_search", {})
        ids = search.setdefault("vector_store_ids", [])
        if not ids:
            week = ExpiresAfter(anchor="last_active_at", days=7)
            new = VectorStoreCreate(name=f"thread {thread['id']}", expires_after=week)
            ids.append((await self._stores.create(project_id, new)).id)
            await self.docs.save(thread)
        await self._stores.attach(project_id, ids[0], file_ids)


def _check_message(m: MessageCreate, param: str) -> None:
    text_parts(m, param)
    for i, a in enumerate(m.attachments or []):
        if any(t.type != "file_search" for t in a.tools):
            raise InvalidRequest("Attachments may be used with the file_search tool only.",
                                 param=f"{param}attachments.[{i}].tools")  # fmt: skip


def _format(fmt: object) -> object:
    """A response_format as stored: 'auto' or the format object."""
    return fmt if isinstance(fmt, str) else fmt.model_dump(by_alias=True, exclude_none=True)  # type: ignore[attr-defined]
