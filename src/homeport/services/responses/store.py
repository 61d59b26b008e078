"""Where responses and conversations live: SQL rows, scoped by project (another project's object
is not found), so any replica continues what another one started."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import delete, select, update

from ...errors import NotFound
from ...ids import new_id
from ...storage.db import Database, in_project, ordered
from ...storage.tables import ConversationItemRow, ConversationRow, ResponseEventRow, ResponseRow
from .items import Item

__all__ = ["ConversationStore", "ResponseStore"]


class ResponseStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(
        self, project_id: str | None, response: dict[str, Any], inputs: list[Item], context: list[Item],
        request: str | None = None, key_id: str | None = None,
    ) -> None:  # fmt: skip
        row = ResponseRow(id=response["id"], project_id=project_id, status=response["status"],
                          created_at=int(response["created_at"]), body=json.dumps(response),
                          input_items=json.dumps(inputs), context=json.dumps(context), request=request,
                          key_id=key_id)  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            await session.merge(row)

    async def background(self, response_id: str) -> ResponseRow | None:
        """A background response's row, for its job (whatever its project)."""
        async with self._db.sessions() as session:
            return await session.get(ResponseRow, response_id)

    async def move(self, response: dict[str, Any], status: str, *, only_from: tuple[str, ...]) -> bool:
        """Set the status (in the row and its body) if it is one of `only_from`: one conditional UPDATE."""
        response["status"] = status
        query = update(ResponseRow).where(ResponseRow.id == response["id"], ResponseRow.status.in_(only_from))
        async with self._db.sessions() as session, session.begin():
            result = await session.execute(query.values(status=status, body=json.dumps(response)))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def status(self, response_id: str) -> str | None:
        async with self._db.sessions() as session:
            return await session.scalar(select(ResponseRow.status).where(ResponseRow.id == response_id))

    async def _row(self, project_id: str | None, response_id: str, param: str) -> ResponseRow:
        async with self._db.sessions() as session:
            row = await session.scalar(
                select(ResponseRow).where(ResponseRow.id == response_id, in_project(ResponseRow.project_id, project_id))
            )
        if row is None:
            raise NotFound(f"Response with id '{response_id}' not found.", param=param)
        return row

    async def get(self, project_id: str | None, response_id: str, param: str = "response_id") -> dict[str, Any]:
        return json.loads((await self._row(project_id, response_id, param)).body)

    async def context(self, project_id: str | None, response_id: str, param: str) -> list[Item]:
        """Every item up to and including the response's output: one row read, however deep the chain."""
        return json.loads((await self._row(project_id, response_id, param)).context)

    async def inputs(self, project_id: str | None, response_id: str) -> list[Item]:
        return json.loads((await self._row(project_id, response_id, "response_id")).input_items)

    async def delete(self, project_id: str | None, response_id: str) -> None:
        await self._row(project_id, response_id, "response_id")
        async with self._db.sessions() as session, session.begin():
            await session.execute(delete(ResponseRow).where(ResponseRow.id == response_id))
            await session.execute(delete(ResponseEventRow).where(ResponseEventRow.response_id == response_id))

    async def add_events(self, response_id: str, events: list[dict[str, Any]]) -> None:
        async with self._db.sessions() as session, session.begin():
            session.add_all(ResponseEventRow(response_id=response_id, seq=e["sequence_number"], body=json.dumps(e))
                            for e in events)  # fmt: skip

    async def clear_events(self, response_id: str) -> None:
        async with self._db.sessions() as session, session.begin():
            await session.execute(delete(ResponseEventRow).where(ResponseEventRow.response_id == response_id))

    async def events(self, response_id: str, first: int) -> list[dict[str, Any]]:
        """A background response's events from sequence number `first` on."""
        c = ResponseEventRow
        query = select(c.body).where(c.response_id == response_id, c.seq >= first).order_by(c.seq)
        async with self._db.sessions() as session:
            return [json.loads(b) for b in await session.scalars(query)]


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, project_id: str | None, metadata: dict[str, str], items: list[Item]) -> dict[str, Any]:
        row = ConversationRow(id=new_id("conv_", 40), project_id=project_id, created_at=int(time.time()),
                              metadata_json=json.dumps(metadata))  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            session.add(row)
        await self.append(row.id, items)
        return _conversation(row)

    async def _row(self, project_id: str | None, conversation_id: str, param: str) -> ConversationRow:
        async with self._db.sessions() as session:
            row = await session.scalar(
                select(ConversationRow).where(ConversationRow.id == conversation_id,
                                              in_project(ConversationRow.project_id, project_id))
            )  # fmt: skip
        if row is None:
            raise NotFound(f"Conversation with id '{conversation_id}' not found.", param=param)
        return row

    async def get(self, project_id: str | None, conversation_id: str, param: str = "conversation_id") -> dict[str, Any]:
        return _conversation(await self._row(project_id, conversation_id, param))

    async def update(self, project_id: str | None, conversation_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        await self._row(project_id, conversation_id, "conversation_id")
        async with self._db.sessions() as session, session.begin():
            await session.execute(update(ConversationRow).where(ConversationRow.id == conversation_id)
                                  .values(metadata_json=json.dumps(metadata)))  # fmt: skip
        return await self.get(project_id, conversation_id)

    async def delete(self, project_id: str | None, conversation_id: str) -> None:
        """The conversation and its items."""
        await self._row(project_id, conversation_id, "conversation_id")
        async with self._db.sessions() as session, session.begin():
            await session.execute(
                delete(ConversationItemRow).where(ConversationItemRow.conversation_id == conversation_id)
            )
            await session.execute(delete(ConversationRow).where(ConversationRow.id == conversation_id))

    async def append(self, conversation_id: str, items: list[Item]) -> None:
        now = int(time.time())
        async with self._db.sessions() as session, session.begin():
            for item in items:
                session.add(ConversationItemRow(id=item["id"], conversation_id=conversation_id, created_at=now,
                                                body=json.dumps(item)))  # fmt: skip

    async def items(
        self, project_id: str | None, conversation_id: str, order: str = "asc", param: str = "conversation_id"
    ) -> list[Item]:
        await self._row(project_id, conversation_id, param)
        query = select(ConversationItemRow.body).where(ConversationItemRow.conversation_id == conversation_id)
        async with self._db.sessions() as session:
            return [json.loads(b) for b in await session.scalars(ordered(query, order, ConversationItemRow.seq))]

    async def item(self, project_id: str | None, conversation_id: str, item_id: str) -> Item:
        await self._row(project_id, conversation_id, "conversation_id")
        async with self._db.sessions() as session:
            body = await session.scalar(select(ConversationItemRow.body).where(
                ConversationItemRow.id == item_id, ConversationItemRow.conversation_id == conversation_id))  # fmt: skip
        if body is None:
            raise NotFound(f"Item with id '{item_id}' not found.", param="item_id")
        return json.loads(body)

    async def delete_item(self, project_id: str | None, conversation_id: str, item_id: str) -> None:
        await self.item(project_id, conversation_id, item_id)
        async with self._db.sessions() as session, session.begin():
            await session.execute(delete(ConversationItemRow).where(ConversationItemRow.id == item_id))


def _conversation(row: ConversationRow) -> dict[str, Any]:
    return {"id": row.id, "object": "conversation", "created_at": row.created_at,
            "metadata": json.loads(row.metadata_json)}  # fmt: skip
