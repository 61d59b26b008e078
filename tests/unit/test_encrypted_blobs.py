"""File bytes encrypted at rest: round trips, nothing readable on disk, tampering and truncation
and a wrong key are refused, and blobs from before encryption still read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from homeport.storage.blobs import BlobTooLarge, EncryptedBlobStore, LocalBlobStore

pytestmark = pytest.mark.anyio
SECRET = b"Meet at the harbour at noon. " * 100_000  # 2.9 MB: three segments


async def _pieces(data: bytes, size: int = 65536):  # -> AsyncIterator[bytes]
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_round_trip_and_nothing_readable_on_disk(tmp_path: Path) -> None:
    store = EncryptedBlobStore(LocalBlobStore(tmp_path), os.urandom(32))
    key, size = await store.put(_pieces(SECRET), 10 << 20)
    assert size == len(SECRET) and store.read(key) == SECRET
    on_disk = (tmp_path / key).read_bytes()
    assert b"harbour" not in on_disk and len(on_disk) < len(SECRET) + 4096
    empty, _ = await store.put(_pieces(b""), 10)
    assert store.read(empty) == b""
    with pytest.raises(BlobTooLarge):
        await store.put(_pieces(SECRET), 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([key, empty])  # nothing half-written


async def test_tampering_truncation_and_a_wrong_key_are_refused(tmp_path: Path) -> None:
    key_bytes = os.urandom(32)
    store = EncryptedBlobStore(LocalBlobStore(tmp_path), key_bytes)
    key, _ = await store.put(_pieces(SECRET), 10 << 20)
    path = tmp_path / key
    sealed = path.read_bytes()
    path.write_bytes(sealed[:100] + bytes([sealed[100] ^ 1]) + sealed[101:])  # one bit flipped
    with pytest.raises(InvalidTag):
        store.read(key)
    path.write_bytes(sealed[: len(sealed) // 2])  # cut after a segment boundary or inside one
    with pytest.raises((InvalidTag, ValueError)):
        store.read(key)
    path.write_bytes(sealed)
    with pytest.raises(InvalidTag):
        EncryptedBlobStore(LocalBlobStore(tmp_path), os.urandom(32)).read(key)
    assert EncryptedBlobStore(LocalBlobStore(tmp_path), key_bytes).read(key) == SECRET


async def test_blobs_written_before_encryption_still_read(tmp_path: Path) -> None:
    plain = LocalBlobStore(tmp_path)
    key, _ = await plain.put(_pieces(b"written in the clear"), 100)
    assert EncryptedBlobStore(plain, os.urandom(32)).read(key) == b"written in the clear"
