"""Files and multi-part uploads: metadata in the database, bytes in the blob store, per project.

A file belongs to the project of the key that created it; every lookup is scoped by project,
so another project's file is "not found" (404), never "forbidden".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy import ColumnElement, delete, or_, select, update

from ...errors import InvalidRequest, NotFound, RequestTooLarge
from ...ids import sortable_id
from ...storage.blobs import BlobStore, BlobTooLarge
from ...storage.db import Database, in_project, ordered
from ...storage.tables import FileRow, UploadPartRow, UploadRow
from .extract import check_supported

__all__ = ["StoredFile", "Upload", "FileStore", "PURPOSES"]

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
OUTPUT_PURPOSES = ("batch_output",)
"""Files Homeport writes (a batch's results); clients cannot upload these."""
UPLOAD_TTL_S = 3600  # OpenAI: an upload not completed within an hour expires


@dataclass(frozen=True)
class StoredFile:
    id: str
    project_id: str | None
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int | None
    blob: str

    def wire(self) -> dict:
        out = {"id": self.id, "object": "file", "bytes": self.bytes, "created_at": self.created_at,
               "filename": self.filename, "purpose": self.purpose, "status": "processed"}  # fmt: skip
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at
        return out


@dataclass(frozen=True)
class Upload:
    id: str
    filename: str
    purpose: str
    bytes: int
    mime_type: str
    status: str
    created_at: int
    expires_at: int
    file: StoredFile | None = None

    def wire(self) -> dict:
        return {"id": self.id, "object": "upload", "bytes": self.bytes, "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": self.status,
                "expires_at": self.expires_at, "file": self.file.wire() if self.file else None}  # fmt: skip


def _file(row: FileRow) -> StoredFile:
    return StoredFile(row.id, row.project_id, row.filename, row.purpose, row.bytes, row.created_at, row.expires_at,
                      row.blob)  # fmt: skip


def _live(now: int) -> ColumnElement[bool]:
    return or_(FileRow.expires_at.is_(None), FileRow.expires_at > now)


class FileStore:
    def __init__(self, db: Database, blobs: BlobStore, max_bytes: int) -> None:
        self._db, self.blobs, self.max_bytes = db, blobs, max_bytes

    async def create(
        self, project_id: str | None, filename: str, purpose: str, chunks: AsyncIterator[bytes],
        expires_after_s: int | None = None, *, output: bool = False,
    ) -> StoredFile:  # fmt: skip
        if purpose not in PURPOSES and not (output and purpose in OUTPUT_PURPOSES):
            raise InvalidRequest(f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'", param="purpose")
        filename = file_name(filename, "file")
        if purpose == "assistants":
            check_supported(filename)
        try:
            blob, size = await self.blobs.put(chunks, self.max_bytes)
        except BlobTooLarge:
            raise RequestTooLarge(f"File is larger than the limit of {self.max_bytes} bytes.") from None
        now = int(time.time())
        row = FileRow(id=sortable_id("file-"), project_id=project_id, filename=filename, purpose=purpose, bytes=size,
                      created_at=now, expires_at=None if expires_after_s is None else now + expires_after_s,
                      blob=blob)  # fmt: skip
        try:
            async with self._db.sessions() as session, session.begin():
                session.add(row)
        except BaseException:
            self.blobs.delete(blob)  # no orphaned bytes
            raise
        return _file(row)

    async def get(self, project_id: str | None, file_id: str, param: str = "file_id") -> StoredFile:
        async with self._db.sessions() as session:
            row = await session.scalar(
                select(FileRow).where(
                    FileRow.id == file_id, in_project(FileRow.project_id, project_id), _live(int(time.time()))
                )  # fmt: skip
            )
        if row is None:
            raise NotFound(f"No such File object: {file_id}", param=param)
        return _file(row)

    async def list_files(self, project_id: str | None, purpose: str | None, order: str) -> list[StoredFile]:
        query = select(FileRow).where(in_project(FileRow.project_id, project_id), _live(int(time.time())))
        if purpose is not None:
            query = query.where(FileRow.purpose == purpose)
        query = ordered(query, order, FileRow.created_at, FileRow.id)
        async with self._db.sessions() as session:
            return [_file(r) for r in await session.scalars(query)]

    async def delete(self, project_id: str | None, file_id: str) -> None:
        found = await self.get(project_id, file_id)
        async with self._db.sessions() as session, session.begin():
            await session.execute(delete(FileRow).where(FileRow.id == found.id))
        self.blobs.delete(found.blob)

    def content(self, f: StoredFile) -> Iterator[bytes]:
        return self.blobs.open(f.blob)

    async def read(self, f: StoredFile) -> bytes:
        return await asyncio.to_thread(self.blobs.read, f.blob)

    # ---- uploads ------------------------------------------------------------------------

    async def create_upload(
        self, project_id: str | None, filename: str, purpose: str, size: int, mime_type: str
    ) -> Upload:
        if purpose not in PURPOSES:
            raise InvalidRequest(f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'", param="purpose")
        if size > self.max_bytes:
            raise RequestTooLarge(f"Uploads are limited to {self.max_bytes} bytes; this one declares {size}.")
        filename = file_name(filename, "filename")
        if purpose == "assistants":
            check_supported(filename, param="filename")
        now = int(time.time())
        row = UploadRow(id=sortable_id("upload_"), project_id=project_id, filename=filename, purpose=purpose,
                        bytes=size, mime_type=mime_type, status="pending", created_at=now,
                        expires_at=now + UPLOAD_TTL_S)  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            session.add(row)
        return self._upload(row)

    def _upload(self, row: UploadRow, file: StoredFile | None = None) -> Upload:
        status = "expired" if row.status == "pending" and row.expires_at <= time.time() else row.status
        return Upload(row.id, row.filename, row.purpose, row.bytes, row.mime_type, status, row.created_at,
                      row.expires_at, file)  # fmt: skip

    async def _pending(self, project_id: str | None, upload_id: str) -> UploadRow:
        async with self._db.sessions() as session:
            row = await session.scalar(
                select(UploadRow).where(UploadRow.id == upload_id, in_project(UploadRow.project_id, project_id))
            )
        if row is None:
            raise NotFound(f"No such Upload object: {upload_id}", param="upload_id")
        status = self._upload(row).status
        if status != "pending":
            raise InvalidRequest(f"Upload {upload_id} is {status}; it accepts no more changes.", param="upload_id")
        return row

    async def add_part(self, project_id: str | None, upload_id: str, chunks: AsyncIterator[bytes]) -> dict:
        upload = await self._pending(project_id, upload_id)
        try:
            blob, size = await self.blobs.put(chunks, min(64 << 20, upload.bytes))
        except BlobTooLarge:
            raise RequestTooLarge("A part is limited to 64 MB and to the upload's declared size.") from None
        row = UploadPartRow(id=sortable_id("part_"), upload_id=upload_id, created_at=int(time.time()), bytes=size,
                            blob=blob)  # fmt: skip
        async with self._db.sessions() as session, session.begin():
            session.add(row)
        return {"id": row.id, "object": "upload.part", "created_at": row.created_at, "upload_id": upload_id}

    async def complete_upload(self, project_id: str | None, upload_id: str, part_ids: list[str]) -> Upload:
        upload = await self._pending(project_id, upload_id)
        async with self._db.sessions() as session:
            parts = {p.id: p for p in await session.scalars(select(UploadPartRow).where(
                UploadPartRow.upload_id == upload_id))}  # fmt: skip
        for i, part_id in enumerate(part_ids):
            if part_id not in parts:
                raise InvalidRequest(f"No part {part_id} in upload {upload_id}.", param=f"part_ids.[{i}]")
        if len(set(part_ids)) != len(part_ids):
            raise InvalidRequest("part_ids lists a part twice.", param="part_ids")
        total = sum(parts[p].bytes for p in part_ids)
        if total != upload.bytes:
            raise InvalidRequest(f"The parts hold {total} bytes; the upload declared {upload.bytes}.",
                                 param="part_ids")  # fmt: skip

        async def joined() -> AsyncIterator[bytes]:
            for part_id in part_ids:
                for piece in self.blobs.open(parts[part_id].blob):
                    yield piece

        file = await self.create(project_id, upload.filename, upload.purpose, joined())
        async with self._db.sessions() as session, session.begin():
            done = update(UploadRow).where(UploadRow.id == upload_id).values(status="completed", file_id=file.id)
            await session.execute(done)
        await self._drop_parts(upload_id)
        upload.status, upload.file_id = "completed", file.id
        return self._upload(upload, file)

    async def cancel_upload(self, project_id: str | None, upload_id: str) -> Upload:
        upload = await self._pending(project_id, upload_id)
        async with self._db.sessions() as session, session.begin():
            await session.execute(update(UploadRow).where(UploadRow.id == upload_id).values(status="cancelled"))
        await self._drop_parts(upload_id)
        upload.status = "cancelled"
        return self._upload(upload)

    async def _drop_parts(self, upload_id: str) -> None:
        async with self._db.sessions() as session, session.begin():
            parts = list(await session.scalars(select(UploadPartRow).where(UploadPartRow.upload_id == upload_id)))
            await session.execute(delete(UploadPartRow).where(UploadPartRow.upload_id == upload_id))
        for part in parts:
            self.blobs.delete(part.blob)


def file_name(given: str, param: str) -> str:
    """A file's name, never a path (`../../etc/x.txt` is stored as `x.txt`); control characters,
    NUL among them, are refused (PostgreSQL cannot store NUL, and no real name has them)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in given):
        raise InvalidRequest("A file name may not contain control characters.", param=param)
    name = PurePosixPath(given.replace("\\", "/")).name
    if not name or name in (".", ".."):
        raise InvalidRequest(f"'{given[:200]}' is not a file name.", param=param)
    return name[:255]
