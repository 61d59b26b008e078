"""File bytes, behind a small interface: local disk by default; object storage fits the same seam.

Writes go to a temporary name and are renamed into place when complete, so a failed or
oversized upload never leaves a half-written blob that something could read.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

__all__ = ["BlobStore", "LocalBlobStore", "BlobTooLarge"]


class BlobTooLarge(Exception):
    pass


class BlobStore(Protocol):
    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        """Store a stream; returns (key, size). Raises BlobTooLarge past `max_bytes` (nothing kept)."""
        ...

    def open(self, key: str) -> Iterator[bytes]:
        """The blob's bytes, in pieces."""
        ...

    def read(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        key = secrets.token_hex(16)
        tmp = self.root / f".{key}.part"
        size = 0
        try:
            with tmp.open("wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge
                    f.write(chunk)
            os.replace(tmp, self._path(key))
        finally:
            tmp.unlink(missing_ok=True)
        return key, size

    def open(self, key: str) -> Iterator[bytes]:
        with self._path(key).open("rb") as f:
            while chunk := f.read(1 << 20):
                yield chunk

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
