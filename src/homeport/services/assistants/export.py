"""Threads → conversations: a thread's messages copied, in order, into a new conversation of the
same project, so code can move from the Assistants API to Responses at its own pace (the thread
and the Assistants API stay as they are)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from ...errors import NotFound
from ...protocol.responses import MessageItem
from ...storage.db import Database, ordered
from ...storage.tables import AssistantObjectRow
from ..responses.items import normalise
from ..responses.store import ConversationStore

__all__ = ["export_thread"]


async def export_thread(db: Database, thread_id: str) -> dict[str, Any]:
    """The new conversation (whatever project the thread belongs to: an operator's tool)."""
    c = AssistantObjectRow
    async with db.sessions() as session:
        thread = await session.scalar(select(c).where(c.id == thread_id, c.kind == "thread"))
        if thread is None:
            raise NotFound(f"No thread found with id '{thread_id}'.", param="thread_id")
        bodies = await session.scalars(ordered(select(c.body).where(c.kind == "message", c.thread_id == thread_id),
                                               "asc", c.id))  # fmt: skip
        messages = [json.loads(b) for b in bodies]
    items = []
    for m in messages:
        if m["status"] != "completed":
            continue
        text = "".join(p["text"]["value"] for p in m["content"] if p["type"] == "text")
        items += normalise([MessageItem(role=m["role"], content=text)], {})
    metadata = {"exported_from": thread_id}
    return await ConversationStore(db).create(thread.project_id, metadata, items)
