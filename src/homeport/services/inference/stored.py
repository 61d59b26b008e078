"""Stored chat completions (`store: true`): the completion and the messages that asked for it,
listed, read, re-labelled (metadata) and deleted — scoped by project."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select, update

from ...errors import NotFound
from ...protocol.chat import ChatCompletionChunk, ChatCompletionRequest
from ...storage.db import Database, in_project, ordered
from ...storage.tables import StoredCompletionRow

__all__ = ["Assembler", "StoredCompletions"]


class StoredCompletions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, project_id: str | None, request: ChatCompletionRequest, completion: dict[str, Any]) -> None:
        messages = [_message(f"{completion['id']}-{i}", m.model_dump(mode="json", exclude_none=True))
                    for i, m in enumerate(request.messages)]  # fmt: skip
        row = StoredCompletionRow(
            id=completion["id"],
            project_id=project_id,
            model=completion["model"],
            created_at=int(completion["created"]),
            body=json.dumps(completion),
            metadata_json=json.dumps(request.metadata or {}),
            messages=json.dumps(messages),
        )
        async with self._db.sessions() as session, session.begin():
            session.add(row)

    async def _row(self, project_id: str | None, completion_id: str) -> StoredCompletionRow:
        async with self._db.sessions() as session:
            row = await session.scalar(
                select(StoredCompletionRow).where(
                    StoredCompletionRow.id == completion_id, in_project(StoredCompletionRow.project_id, project_id)
                )
            )
        if row is None:
            raise NotFound(f"Chat completion with id '{completion_id}' not found.", param="completion_id")
        return row

    async def get(self, project_id: str | None, completion_id: str) -> dict[str, Any]:
        return _body(await self._row(project_id, completion_id))

    async def find(
        self, project_id: str | None, model: str | None, metadata: dict[str, str], order: str
    ) -> list[dict[str, Any]]:
        query = select(StoredCompletionRow).where(in_project(StoredCompletionRow.project_id, project_id))
        if model is not None:
            query = query.where(StoredCompletionRow.model == model)
        query = ordered(query, order, StoredCompletionRow.created_at, StoredCompletionRow.id)
        async with self._db.sessions() as session:
            rows = list(await session.scalars(query))
        found = [_body(r) for r in rows]
        return [c for c in found if all(c["metadata"].get(k) == v for k, v in metadata.items())]

    async def update(self, project_id: str | None, completion_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        await self._row(project_id, completion_id)
        async with self._db.sessions() as session, session.begin():
            await session.execute(update(StoredCompletionRow).where(StoredCompletionRow.id == completion_id)
                                  .values(metadata_json=json.dumps(metadata)))  # fmt: skip
        return await self.get(project_id, completion_id)

    async def delete(self, project_id: str | None, completion_id: str) -> None:
        await self._row(project_id, completion_id)
        async with self._db.sessions() as session, session.begin():
            await session.execute(delete(StoredCompletionRow).where(StoredCompletionRow.id == completion_id))

    async def messages(self, project_id: str | None, completion_id: str) -> list[dict[str, Any]]:
        return json.loads((await self._row(project_id, completion_id)).messages)


class Assembler:
    """A streamed completion put back together (to store it as the non-streamed one would be)."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.head = self.head or {"id": chunk.id, "created": chunk.created, "model": chunk.model,
                                  "system_fingerprint": chunk.system_fingerprint}  # fmt: skip
        if chunk.usage is not None:
            self.head["usage"] = chunk.usage.model_dump()
        for c in chunk.choices:
            choice = self._choices.setdefault(c.index, {"content": "", "calls": {}, "finish_reason": None})
            choice["content"] += c.delta.content or ""
            choice["finish_reason"] = c.finish_reason or choice["finish_reason"]
            for call in c.delta.tool_calls or []:
                entry = choice["calls"].setdefault(call.index, {"id": call.id, "type": "function",
                                                                "function": {"name": "", "arguments": ""}})  # fmt: skip
                for k, v in (call.function or {}).items():
                    entry["function"][k] += v

    def completion(self, metadata: dict[str, str] | None) -> dict[str, Any]:
        choices = []
        for index, c in sorted(self._choices.items()):
            calls = [c["calls"][i] for i in sorted(c["calls"])] or None
            content = c["content"] if c["content"] or not calls else None
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
            if calls:
                message["tool_calls"] = calls
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": c["finish_reason"]})
        return {"object": "chat.completion", **self.head, "choices": choices, "metadata": metadata,
                "service_tier": "default"}  # fmt: skip


def _message(message_id: str, message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    parts = content if isinstance(content, list) else None
    text = "".join(p.get("text", "") for p in parts) if parts else content
    return message | {"id": message_id, "content": text, "refusal": None, "content_parts": parts}


def _body(row: StoredCompletionRow) -> dict[str, Any]:
    return json.loads(row.body) | {"metadata": json.loads(row.metadata_json)}
