"""The audit log: who changed what on the platform, in OpenAI's audit log shape.

Entries are written by the admin API (the actor is the admin key) and the CLI (the actor is a
`session` of the local `homeport-cli` user), and are append-only: the service has no update or
delete, the API offers none, and the table's triggers refuse both (migration 0018).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ...ids import sortable_id
from ...storage.db import Database
from ...storage.tables import AuditLogRow

__all__ = ["Actor", "AuditLog", "AuditQuery", "CLI", "user_reference"]


@dataclass(frozen=True)
class Actor:
    """Who acted: an API key (by id), or a local session (the CLI)."""

    key_id: str | None = None
    user: str | None = None

    @property
    def id(self) -> str | None:
        return self.key_id or self.user

    def wire(self) -> dict[str, Any]:
        if self.key_id is not None:
            return {"type": "api_key", "api_key": {"id": self.key_id, "type": "service_account",
                                                   "service_account": {"id": self.key_id}}}  # fmt: skip
        return {"type": "session", "session": {"user": {"id": self.user or "unknown"}, "ip_address": "127.0.0.1"}}


CLI = Actor(user="homeport-cli")


def user_reference(user: str) -> str:
    """How the append-only log names an erased end user: a hash, so the erasure itself does not
    keep the name it erased (the same user gives the same reference)."""
    return "user:sha256:" + hashlib.sha256(user.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AuditQuery:
    event_types: tuple[str, ...] = ()
    project_ids: tuple[str, ...] = ()
    actor_ids: tuple[str, ...] = ()
    resource_ids: tuple[str, ...] = ()
    gt: int | None = None
    gte: int | None = None
    lt: int | None = None
    lte: int | None = None
    limit: int = 20
    after: str | None = None
    before: str | None = None


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, kind: str, actor: Actor, resource_id: str, details: dict[str, Any] | None = None, *,
                     project: tuple[str, str] | None = None) -> None:  # fmt: skip
        """Append an entry: `kind` is OpenAI's event type, `details` its payload (beside the id)."""
        now = int(time.time())
        entry: dict[str, Any] = {"id": sortable_id("audit_log-"), "type": kind, "effective_at": now,
                                 "actor": actor.wire(), kind: {"id": resource_id, **(details or {})}}  # fmt: skip
        if project is not None:
            entry["project"] = {"id": project[0], "name": project[1]}
        row = AuditLogRow(id=entry["id"], type=kind, effective_at=now, project_id=project[0] if project else None,
                          actor_id=actor.id, resource_id=resource_id, body=json.dumps(entry))  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            session.add(row)

    async def list(self, q: AuditQuery) -> tuple[list[dict[str, Any]], bool]:
        """Entries newest first, filtered; (page, has_more)."""
        c = AuditLogRow
        query = select(c.body)
        for column, wanted in ((c.type, q.event_types), (c.project_id, q.project_ids), (c.actor_id, q.actor_ids),
                               (c.resource_id, q.resource_ids)):  # fmt: skip
            if wanted:
                query = query.where(column.in_(wanted))
        for bound, test in ((q.gt, c.effective_at.__gt__), (q.gte, c.effective_at.__ge__),
                            (q.lt, c.effective_at.__lt__), (q.lte, c.effective_at.__le__)):  # fmt: skip
            if bound is not None:
                query = query.where(test(bound))
        if q.after is not None:
            query = query.where(c.id < q.after)
        if q.before is not None:  # the page just newer than `before`: read upward, then turn it round
            query = query.where(c.id > q.before).order_by(c.id.asc())
        else:
            query = query.order_by(c.id.desc())
        async with self._db.sessions() as session:
            bodies = list((await session.scalars(query.limit(q.limit + 1))).all())
        page = bodies[: q.limit]
        if q.before is not None:
            page.reverse()
        return [json.loads(b) for b in page], len(bodies) > q.limit
