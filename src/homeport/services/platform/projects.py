"""Projects: a key can belong to one; its limits, archive state, prompt-logging opt-in, data
retention, moderation guardrail and its own model names."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from ...errors import Conflict
from ...ids import sortable_id
from ...storage.db import Database
from ...storage.tables import ProjectRow

__all__ = ["Project", "ProjectStore", "project_of"]


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    created_at: int
    archived_at: int | None = None
    log_prompts: bool = False
    """Whether the project's prompts and outputs are logged (off unless the project opts in)."""
    response_retention_days: int | None = None
    """Stored responses older than this many days are deleted, and conversations idle as long; None: kept."""
    retention_days: int | None = None
    """The project's other stored data older than this many days is deleted; None: kept."""
    moderate: str | None = None
    """The moderation guardrail (services/moderations/guardrails.py): `input`, `output`, `both`; None: off."""
    moderation_action: str = "block"
    """What the guardrail does with a flagged request: `block` it (400) or `flag` it (recorded, served)."""
    model_aliases: dict[str, str] = field(default_factory=dict)
    """The project's own model names ({name: served model}), resolved before the server's."""


def project_of(row: ProjectRow) -> Project:
    return Project(row.id, row.name, row.created_at, row.archived_at, row.log_prompts, row.response_retention_days,
                   row.retention_days, row.moderate, row.moderation_action or "block",
                   json.loads(row.model_aliases) if row.model_aliases else {})  # fmt: skip


class ProjectStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure(self, name: str) -> str:
        """The id of the project with this name, created if missing."""
        async with self.db.sessions() as session:
            found = await session.scalar(select(ProjectRow.id).where(ProjectRow.name == name))
        if found is not None:
            return found
        try:
            return (await self.create(name)).id
        except Conflict:  # created meanwhile by another process
            async with self.db.sessions() as session:
                found = await session.scalar(select(ProjectRow.id).where(ProjectRow.name == name))
            if found is None:
                raise
            return found

    async def create(self, name: str) -> Project:
        row = ProjectRow(id=sortable_id("proj_"), name=name, created_at=int(time.time()))
        try:
            async with self.db.sessions() as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise Conflict(f"A project named '{name}' already exists.", param="name") from exc
        return project_of(row)

    async def get(self, project_id: str) -> Project | None:
        async with self.db.sessions() as session:
            row = await session.get(ProjectRow, project_id)
        return None if row is None else project_of(row)

    async def named(self, name: str) -> Project | None:
        async with self.db.sessions() as session:
            row = await session.scalar(select(ProjectRow).where(ProjectRow.name == name))
        return None if row is None else project_of(row)

    async def list(self, *, include_archived: bool = True) -> list[Project]:
        query = select(ProjectRow).order_by(ProjectRow.created_at, ProjectRow.id)
        if not include_archived:
            query = query.where(ProjectRow.archived_at.is_(None))
        async with self.db.sessions() as session:
            return [project_of(r) for r in await session.scalars(query)]

    async def update(
        self, project_id: str, *, name: str | None = None, archived: bool | None = None,
        log_prompts: bool | None = None, response_retention_days: int | None = None,
        retention_days: int | None = None, moderate: str | None = None, moderation_action: str | None = None,
        model_aliases: dict[str, str] | None = None,
    ) -> Project | None:  # fmt: skip
        """Change what is given; a retention of 0 days means keep (no retention); `moderate="off"`
        turns the guardrail off."""
        values: dict[str, object] = {}
        if name is not None:
            values["name"] = name
        if archived is not None:
            values["archived_at"] = int(time.time()) if archived else None
        if log_prompts is not None:
            values["log_prompts"] = log_prompts
        if response_retention_days is not None:
            values["response_retention_days"] = response_retention_days or None
        if retention_days is not None:
            values["retention_days"] = retention_days or None
        if moderate is not None:
            values["moderate"] = None if moderate == "off" else moderate
        if moderation_action is not None:
            values["moderation_action"] = moderation_action
        if model_aliases is not None:
            values["model_aliases"] = json.dumps(model_aliases, sort_keys=True) if model_aliases else None
        if values:
            try:
                async with self.db.sessions() as session, session.begin():
                    await session.execute(update(ProjectRow).where(ProjectRow.id == project_id).values(**values))
            except IntegrityError as exc:
                raise Conflict(f"A project named '{name}' already exists.", param="name") from exc
        return await self.get(project_id)
