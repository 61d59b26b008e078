"""Assistants v2: assistants, threads and messages (runs are in services/runs.py).

Every object is stored as its wire JSON in `assistant_objects`, scoped by project: another
project's object is not found. Ids are time-sortable, so lists order by id.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import delete, select, update

from ...errors import InvalidRequest, NotFound
from ...ids import sortable_id
from ...storage.db import Database
from ...storage.tables import AssistantObjectRow
from ..inference.registry import ModelRegistry
from ..retrieval.files import in_project
from ..retrieval.stores import VectorStoreService, check_metadata

__all__ = ["Documents", "AssistantService"]

_PREFIX = {"assistant": "asst_", "thread": "thread_", "message": "msg_", "run": "run_", "step": "step_"}
_NAMES = {"assistant": "assistant", "thread": "thread", "message": "message", "run": "run", "step": "run step"}


class Documents:
    """The rows of assistant_objects as dicts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        kind: str,
        project_id: str | None,
        body: dict[str, Any],
        *,
        thread_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        body.setdefault("id", sortable_id(_PREFIX[kind]))
        body.setdefault("created_at", int(time.time()))
        row = AssistantObjectRow(
            id=body["id"],
            kind=kind,
            project_id=project_id,
            thread_id=thread_id,
            run_id=run_id,
            status=body.get("status"),
            created_at=body["created_at"],
            body=json.dumps(body),
        )
        async with self._db.sessions() as session, session.begin():
            session.add(row)
        return body

    async def get(self, kind: str, project_id: str | None, object_id: str, param: str | None = None) -> dict[str, Any]:
        async with self._db.sessions() as session:
            body = await session.scalar(
                select(AssistantObjectRow.body).where(
                    AssistantObjectRow.id == object_id,
                    AssistantObjectRow.kind == kind,
                    in_project(AssistantObjectRow.project_id, project_id),
                )
            )
        if body is None:
            raise NotFound(f"No {_NAMES[kind]} found with id '{object_id}'.", param=param)
        return json.loads(body)

    async def list_of(
        self,
        kind: str,
        project_id: str | None,
        *,
        thread_id: str | None = None,
        run_id: str | None = None,
        order: str = "desc",
        status: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        c = AssistantObjectRow
        query = select(c.body).where(c.kind == kind, in_project(c.project_id, project_id))
        if thread_id is not None:
            query = query.where(c.thread_id == thread_id)
        if run_id is not None:
            query = query.where(c.run_id == run_id)
        if status is not None:
            query = query.where(c.status.in_(status))
        query = query.order_by(c.id.desc() if order == "desc" else c.id)
        async with self._db.sessions() as session:
            return [json.loads(b) for b in await session.scalars(query)]

    async def save(self, body: dict[str, Any], *, only_if_status: list[str] | None = None) -> bool:
        """Write the object back; with `only_if_status`, only if its stored status is one of them."""
        query = update(AssistantObjectRow).where(AssistantObjectRow.id == body["id"])
        if only_if_status is not None:
            query = query.where(AssistantObjectRow.status.in_(only_if_status))
        async with self._db.sessions() as session, session.begin():
            result = await session.execute(query.values(body=json.dumps(body), status=body.get("status")))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def status(self, object_id: str) -> str | None:
        async with self._db.sessions() as session:
            return await session.scalar(select(AssistantObjectRow.status).where(AssistantObjectRow.id == object_id))

    async def delete(self, object_id: str) -> None:
        async with self._db.sessions() as session, session.begin():
            await session.execute(
                delete(AssistantObjectRow).where(
                    (AssistantObjectRow.id == object_id) | (AssistantObjectRow.thread_id == object_id)
                )
            )

    async def claim(self, run_id: str) -> bool:
        """queued → in_progress, for exactly one worker (one conditional UPDATE)."""
        c = AssistantObjectRow
        query = update(c).where(c.id == run_id, c.status == "queued")
        async with self._db.sessions() as session, session.begin():
            result = await session.execute(query.values(status="in_progress"))
        return bool(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- validation


def check_tools(tools: Any, param: str = "tools") -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list) or len(tools) > 128:
        raise InvalidRequest("tools is a list of at most 128 tools.", param=param)
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            fn = tool.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise InvalidRequest("A function tool needs function.name.", param=f"{param}.[{i}].function")
        elif kind == "file_search":
            options = tool.get("file_search") or {}
            k = options.get("max_num_results", 20) if isinstance(options, dict) else None
            if not isinstance(k, int) or not 1 <= k <= 50:
                raise InvalidRequest(
                    "file_search.max_num_results is between 1 and 50.",
                    param=f"{param}.[{i}].file_search.max_num_results",
                )
        elif kind == "code_interpreter":
            raise InvalidRequest(
                "Homeport does not run code: the code_interpreter tool is not supported.",
                param=f"{param}.[{i}].type",
                code="unsupported_parameter",
            )
        else:
            raise InvalidRequest(
                f"Unknown tool type {kind!r}; use 'function' or 'file_search'.", param=f"{param}.[{i}].type"
            )
    return tools


def check_sampling(body: dict[str, Any]) -> None:
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None and (not isinstance(value, int | float) or not low <= value <= high):
            raise InvalidRequest(f"{name} must be between {low} and {high}.", param=name)
    fmt = body.get("response_format")
    if (
        fmt is not None
        and fmt != "auto"
        and not (isinstance(fmt, dict) and fmt.get("type") in ("text", "json_object", "json_schema"))
    ):
        raise InvalidRequest(
            "response_format is 'auto' or {'type': 'text' | 'json_object' | 'json_schema'}.", param="response_format"
        )


def text_content(content: Any, param: str = "content") -> list[dict[str, Any]]:
    """A message's content as wire parts: [{"type": "text", "text": {"value", "annotations"}}]."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    if not isinstance(content, list) or not content:
        raise InvalidRequest("content is a string or a non-empty list of parts.", param=param)
    parts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            kind = part.get("type") if isinstance(part, dict) else None
            raise InvalidRequest(
                f"Only text parts are supported (got {kind!r}); the local models read no images.",
                param=f"{param}.[{i}]",
            )
        parts.append({"type": "text", "text": {"value": part["text"], "annotations": []}})
    return parts


class AssistantService:
    def __init__(self, docs: Documents, registry: ModelRegistry, vector_stores: VectorStoreService) -> None:
        self.docs, self._registry, self._stores = docs, registry, vector_stores

    def _check_model(self, model: Any, param: str = "model") -> str:
        if not isinstance(model, str):
            raise InvalidRequest("model is a string.", param=param)
        config = self._registry.config(model, param=param)
        if config.kind != "chat":
            raise InvalidRequest(f"The model `{model}` is not a chat model.", param=param)
        return model

    async def _tool_resources(self, project_id: str | None, resources: Any, param: str = "tool_resources") -> dict:
        if resources is None:
            return {}
        if not isinstance(resources, dict) or set(resources) - {"file_search", "code_interpreter"}:
            raise InvalidRequest("tool_resources takes 'file_search'.", param=param)
        if resources.get("code_interpreter"):
            raise InvalidRequest("The code_interpreter tool is not supported.", param=f"{param}.code_interpreter")
        search = resources.get("file_search") or {}
        ids = list(search.get("vector_store_ids") or [])
        if len(ids) > 1:
            raise InvalidRequest("At most one vector store may be attached.", param=f"{param}.file_search")
        for store_id in ids:
            await self._stores.retrieve(project_id, store_id)  # 404 if not this project's
        for spec in search.get("vector_stores") or []:
            if ids:
                raise InvalidRequest("Give vector_store_ids or vector_stores, not both.", param=f"{param}.file_search")
            store = await self._stores.create(
                project_id,
                {
                    "file_ids": spec.get("file_ids") or [],
                    "chunking_strategy": spec.get("chunking_strategy"),
                    "metadata": spec.get("metadata"),
                },
            )
            ids.append(store["id"])
        return {"file_search": {"vector_store_ids": ids}} if ids else {}

    # ---- assistants ---------------------------------------------------------------------

    async def create_assistant(self, project_id: str | None, req: dict[str, Any]) -> dict[str, Any]:
        check_sampling(req)
        body = {
            "object": "assistant",
            "name": req.get("name"),
            "description": req.get("description"),
            "model": self._check_model(req.get("model")),
            "instructions": req.get("instructions"),
            "tools": check_tools(req.get("tools")),
            "tool_resources": await self._tool_resources(project_id, req.get("tool_resources")),
            "metadata": check_metadata(req.get("metadata")),
            "temperature": req.get("temperature"),
            "top_p": req.get("top_p"),
            "response_format": req.get("response_format", "auto"),
        }
        return await self.docs.add("assistant", project_id, body)

    async def modify_assistant(self, project_id: str | None, assistant_id: str, req: dict[str, Any]) -> dict:
        body = await self.docs.get("assistant", project_id, assistant_id, "assistant_id")
        check_sampling(req)
        for name, value in req.items():
            if name == "model":
                value = self._check_model(value)
            elif name == "tools":
                value = check_tools(value)
            elif name == "tool_resources":
                value = await self._tool_resources(project_id, value)
            elif name == "metadata":
                value = check_metadata(value)
            body[name] = value
        await self.docs.save(body)
        return body

    # ---- threads and messages -----------------------------------------------------------

    async def create_thread(self, project_id: str | None, req: dict[str, Any]) -> dict[str, Any]:
        messages = req.get("messages") or []
        if not isinstance(messages, list):
            raise InvalidRequest("messages is a list.", param="messages")
        resources = await self._tool_resources(project_id, req.get("tool_resources"))
        checked = [self._check_message(m, f"messages.[{i}]") for i, m in enumerate(messages)]
        thread = await self.docs.add(
            "thread",
            project_id,
            {"object": "thread", "tool_resources": resources, "metadata": check_metadata(req.get("metadata"))},
        )
        for i, m in enumerate(checked):
            await self.add_message(project_id, thread, m, f"messages.[{i}]")
        return thread

    def _check_message(self, m: Any, param: str) -> dict[str, Any]:
        if not isinstance(m, dict) or set(m) - {"role", "content", "attachments", "metadata"}:
            raise InvalidRequest("A message has role, content, attachments and metadata.", param=param)
        if m.get("role") not in ("user", "assistant"):
            raise InvalidRequest("role is 'user' or 'assistant'.", param=f"{param}.role")
        text_content(m.get("content"), f"{param}.content")
        check_metadata(m.get("metadata"), f"{param}.metadata")
        attachments = m.get("attachments") or []
        if not isinstance(attachments, list):
            raise InvalidRequest("attachments is a list.", param=f"{param}.attachments")
        for i, a in enumerate(attachments):
            tools = a.get("tools") if isinstance(a, dict) else None
            if not isinstance(a, dict) or not isinstance(a.get("file_id"), str) or not isinstance(tools, list):
                raise InvalidRequest("An attachment has file_id and tools.", param=f"{param}.attachments.[{i}]")
            for t in tools:
                if not isinstance(t, dict) or t.get("type") != "file_search":
                    raise InvalidRequest(
                        "Attachments may be used with the file_search tool only.",
                        param=f"{param}.attachments.[{i}].tools",
                    )
        return m

    async def add_message(
        self,
        project_id: str | None,
        thread: dict[str, Any],
        m: dict[str, Any],
        param: str = "",
        *,
        run_id: str | None = None,
        assistant_id: str | None = None,
    ) -> dict[str, Any]:
        m = self._check_message(m, param or "body")
        attachments = m.get("attachments") or []
        if attachments:
            await self._attach_to_thread(project_id, thread, [a["file_id"] for a in attachments], param)
        body = {
            "object": "thread.message",
            "thread_id": thread["id"],
            "status": "completed",
            "incomplete_details": None,
            "completed_at": int(time.time()),
            "incomplete_at": None,
            "role": m["role"],
            "content": text_content(m["content"]),
            "assistant_id": assistant_id,
            "run_id": run_id,
            "attachments": attachments,
            "metadata": check_metadata(m.get("metadata")),
        }
        return await self.docs.add("message", project_id, body, thread_id=thread["id"], run_id=run_id)

    async def _attach_to_thread(self, project_id: str | None, thread: dict, file_ids: list[str], param: str) -> None:
        """Attached files go to the thread's vector store, made on first use (OpenAI does the same)."""
        search = thread.setdefault("tool_resources", {}).setdefault("file_search", {})
        ids = search.setdefault("vector_store_ids", [])
        if not ids:
            store = await self._stores.create(
                project_id, {"name": f"thread {thread['id']}", "expires_after": {"anchor": "last_active_at", "days": 7}}
            )
            ids.append(store["id"])
            await self.docs.save(thread)
        await self._stores.attach(project_id, ids[0], file_ids, None, None)
