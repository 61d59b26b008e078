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

__all__ = ["BlobStore", "EncryptedBlobStore", "LocalBlobStore", "BlobTooLarge"]


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


class EncryptedBlobStore:
    """File bytes encrypted at rest with AES-256-GCM, around another blob store.

    A blob is `HPE1` then segments of at most 1 MiB of plaintext, each `length (4 bytes) | nonce
    (12) | ciphertext + tag`; a segment's associated data binds it to its blob, its position and
    whether it is the last, so segments cannot be swapped, reordered or cut off unnoticed. Blobs
    written before encryption was turned on (no `HPE1`) are still read as they are.

    It protects the bytes on disk and in backups against whoever reads them without the key (a
    stolen disk, a leaked backup). It does not protect against someone who holds the key or runs
    code in the server's process, and it covers file bytes only: the database (stored responses,
    conversations, metadata) is not encrypted by it.
    """

    MAGIC = b"HPE1"
    SEGMENT = 1 << 20

    def __init__(self, inner: LocalBlobStore, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("the encryption key must be 32 bytes (base64 of 32 random bytes)")
        self._inner, self._aead = inner, AESGCM(key)

    async def put(self, chunks: AsyncIterator[bytes], max_bytes: int) -> tuple[str, int]:
        size = 0
        name = secrets.token_hex(16)  # the plaintext's name inside the AAD; the inner key is separate

        async def sealed() -> AsyncIterator[bytes]:
            nonlocal size
            yield self.MAGIC + name.encode()
            pending, index = b"", 0
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge
                pending += chunk
                while len(pending) > self.SEGMENT:  # a full segment, and more after it
                    yield self._seal(name, index, pending[: self.SEGMENT], last=False)
                    pending, index = pending[self.SEGMENT :], index + 1
            yield self._seal(name, index, pending, last=True)

        key, _ = await self._inner.put(sealed(), max_bytes + max_bytes // 100 + 4096)
        return key, size

    def _seal(self, name: str, index: int, plain: bytes, *, last: bool) -> bytes:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, plain, _aad(name, index, last))
        return len(sealed).to_bytes(4, "big") + nonce + sealed

    def open(self, key: str) -> Iterator[bytes]:
        with self._inner._path(key).open("rb") as f:
            head = f.read(len(self.MAGIC) + 32)
            if not head.startswith(self.MAGIC):  # written before encryption was on
                yield head
                while chunk := f.read(1 << 20):
                    yield chunk
                return
            name, index = head[len(self.MAGIC) :].decode(), 0
            while True:
                length = int.from_bytes(f.read(4) or b"\0\0\0\0", "big")
                nonce, sealed = f.read(12), f.read(length)
                last = f.peek(1) == b""  # a cut-off blob makes a middle segment look last: its tag fails
                yield self._aead.decrypt(nonce, sealed, _aad(name, index, last))  # raises if tampered
                if last:
                    return
                index += 1

    def read(self, key: str) -> bytes:
        return b"".join(self.open(key))

    def delete(self, key: str) -> None:
        self._inner.delete(key)


def _aad(name: str, index: int, last: bool) -> bytes:
    return f"{name}:{index}:{int(last)}".encode()
