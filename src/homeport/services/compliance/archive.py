"""A project's data as a portable archive, and the deletion of a project with all its data.

`export` writes a .tar.gz: `manifest.json` (the project, when, how many rows of what), one
`<table>.jsonl` per table (every column; bytes as base64; API keys without their secret hashes),
and `files/<file id>` with each file's bytes. Chunk vectors are left out: they are derived from
the files by ingestion. `delete` removes every row of the project (files' bytes and vector
indexes too); the audit log keeps its entries, as an audit log must.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, inspect, select

from ...storage.db import Database
from ...storage.sealing import Sealer
from ...storage.tables import (
    ApiKeyRow,
    AssistantObjectRow,
    AuditLogRow,
    BatchResultRow,
    BatchRow,
    ConversationItemRow,
    ConversationRow,
    FileBatchRow,
    FileRow,
    ProjectRow,
    PromptLogRow,
    RateLimitRow,
    RequestStatsDailyRow,
    ResponseEventRow,
    ResponseRow,
    StoredCompletionRow,
    UploadPartRow,
    UploadRow,
    UsageDailyRow,
    UsageHourlyRow,
    UsageRow,
    VectorStoreFileRow,
    VectorStoreRow,
)
from ..retrieval.files import FileStore
from ..retrieval.stores import VectorStoreService

__all__ = ["ProjectArchive"]

# Tables holding a project's rows by `project_id`, and tables whose rows hang off one of those.
_OWNED: tuple[Any, ...] = (ApiKeyRow, FileRow, UploadRow, VectorStoreRow, AssistantObjectRow, ResponseRow,
                           ConversationRow, StoredCompletionRow, BatchRow, UsageRow, UsageHourlyRow,
                           UsageDailyRow, RequestStatsDailyRow, PromptLogRow)  # fmt: skip
_CHILDREN: tuple[tuple[Any, Any, Any], ...] = (  # (table, its column naming the parent, the parent table)
    (UploadPartRow, UploadPartRow.upload_id, UploadRow),
    (VectorStoreFileRow, VectorStoreFileRow.vector_store_id, VectorStoreRow),
    (FileBatchRow, FileBatchRow.vector_store_id, VectorStoreRow),
    (ConversationItemRow, ConversationItemRow.conversation_id, ConversationRow),
    (ResponseEventRow, ResponseEventRow.response_id, ResponseRow),
    (BatchResultRow, BatchResultRow.batch_id, BatchRow),
)
_SECRET = {"secret_hash"}


class ProjectArchive:
    def __init__(self, db: Database, files: FileStore, stores: VectorStoreService, sealer: Sealer) -> None:
        self._db, self._files, self._stores, self._sealer = db, files, stores, sealer

    async def export(self, project_id: str, archive: Path) -> dict[str, int]:
        """Write the project's data to `archive` (.tar.gz); returns rows per table (and files)."""
        tables = await self._rows(project_id)
        for row in tables["prompt_logs"]:  # the archive is portable: readable without the key
            row["body"] = self._sealer.open(row["body"])
        counts = {name: len(rows) for name, rows in tables.items()}
        blobs = {row["id"]: row["blob"] for row in tables["files"]}
        counts["file_bytes"] = len(blobs)
        manifest = {"format": 1, "project_id": project_id, "exported_at": int(time.time()), "rows": counts}
        await asyncio.to_thread(self._write, archive, manifest, tables, blobs)
        return counts

    def _write(self, archive: Path, manifest: dict[str, Any], tables: dict[str, list[dict[str, Any]]],
               blobs: dict[str, str]) -> None:  # fmt: skip
        partial = archive.with_name(archive.name + ".part")
        with tarfile.open(partial, "w:gz") as tar:
            _add(tar, "manifest.json", json.dumps(manifest, indent=1).encode())
            for name, rows in tables.items():
                _add(tar, f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
            for file_id, blob in blobs.items():
                _add(tar, f"files/{file_id}", self._files.blobs.read(blob))
        partial.replace(archive)  # a complete archive, or none

    async def delete(self, project_id: str) -> dict[str, int]:
        """Delete every row of the project, its files' bytes and its vector indexes."""
        tables = await self._rows(project_id)
        for row in tables["vector_stores"]:
            await self._stores.delete(project_id, row["id"])
        async with self._db.sessions() as session, session.begin():  # the stores went with their chunks
            for table, column, parent in _CHILDREN:
                await session.execute(delete(table).where(column.in_(_ids(tables[parent.__tablename__]))))
            key_ids = _ids(tables["api_keys"])
            await session.execute(delete(RateLimitRow).where(RateLimitRow.owner_id.in_([project_id, *key_ids])))
            for table in _OWNED:
                await session.execute(delete(table).where(table.project_id == project_id))
            await session.execute(delete(ProjectRow).where(ProjectRow.id == project_id))
        for row in tables["files"] + tables["upload_parts"]:
            self._files.blobs.delete(row["blob"])
        return {name: len(rows) for name, rows in tables.items()}

    async def _rows(self, project_id: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        async with self._db.sessions() as session:
            out["projects"] = await _select(session, ProjectRow, ProjectRow.id == project_id)
            for table in _OWNED:
                out[table.__tablename__] = await _select(session, table, table.project_id == project_id)
            for table, column, parent in _CHILDREN:
                out[table.__tablename__] = await _select(session, table, column.in_(_ids(out[parent.__tablename__])))
            owners = [project_id, *_ids(out["api_keys"])]
            out["rate_limits"] = await _select(session, RateLimitRow, RateLimitRow.owner_id.in_(owners))
            out["audit_logs"] = await _select(session, AuditLogRow, AuditLogRow.project_id == project_id)
        return out


async def _select(session: Any, table: Any, where: Any) -> list[dict[str, Any]]:
    """Rows as {column name: value} (a column's attribute may be named otherwise, e.g. metadata_json)."""
    columns = [(a.columns[0].name, a.key) for a in inspect(table).column_attrs if a.columns[0].name not in _SECRET]
    rows = await session.scalars(select(table).where(where))
    return [{name: _plain(getattr(row, attr)) for name, attr in columns} for row in rows]


def _plain(value: Any) -> Any:
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value


def _ids(rows: list[dict[str, Any]]) -> list[Any]:
    return [r["id"] for r in rows]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))
