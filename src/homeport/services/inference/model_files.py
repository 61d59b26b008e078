"""Models a user adds (`homeport models add`, POST /v1/homeport/models): a GGUF's metadata read from
its header, and the `user_models` table the registry of every replica serves beside the
configured models.

A GGUF starts with its key-value metadata (the architecture, the context length, the chat
template) before the tensors; reading it takes no model load. Hub downloads go through
`huggingface_hub` (resumable, into data_dir/hub, its endpoint set by HF_ENDPOINT).
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import time
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ...errors import InvalidRequest
from ...settings import ModelConfig
from ...storage.db import Database
from ...storage.tables import UserModelRow

__all__ = ["gguf_metadata", "user_models", "add_user_model", "remove_user_model", "chat_model_config", "from_hub",
           "model_from_source"]  # fmt: skip

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The GGUF's metadata (arrays of more than 16 items are left out: the vocabulary)."""
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise InvalidRequest(f"{path} is not a GGUF file.", param="model")
        version, _tensors, count = struct.unpack("<IQQ", f.read(20))
        if version < 2:
            raise InvalidRequest(f"{path} is GGUF version {version}; llama.cpp reads version 2 and later.")
        found = {}
        for _ in range(count):
            key = _string(f)
            value = _value(f, struct.unpack("<I", f.read(4))[0])
            if value is not ...:
                found[key] = value
    return found


def _string(f: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", f.read(8))
    return f.read(length).decode("utf-8", "replace")


def _value(f: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if kind == 8:
        return _string(f)
    if kind == 9:
        item, n = struct.unpack("<IQ", f.read(12))
        if item in _SCALARS and n > 16:  # skip a long array of scalars in one seek
            f.seek(n * struct.calcsize(_SCALARS[item]), 1)
            return ...
        items = [_value(f, item) for _ in range(n)]
        return items if n <= 16 else ...
    raise InvalidRequest(f"Unknown GGUF metadata type {kind}.")


def chat_model_config(path: Path, model_id: str | None, template: str | None) -> ModelConfig:
    """The config of a chat model served from this GGUF; its chat template from the file, or `template`."""
    meta = gguf_metadata(path)
    if template is None and not meta.get("tokenizer.chat_template"):
        raise InvalidRequest(f"{path.name} carries no chat template: give one with --template (chatml or gemma).",
                             param="template")  # fmt: skip
    name = model_id or re.sub(r"[^a-z0-9.-]+", "-", path.stem.lower()).strip("-")
    stat = path.stat()
    return ModelConfig(id=name, version=f"local-{stat.st_size:x}-{int(stat.st_mtime):x}", kind="chat",
                       backend="llamacpp", path=path.resolve(), chat_template=template, owned_by="user")  # fmt: skip


def from_hub(source: str, data_dir: Path) -> Path:
    """`repo_id:file` from the Hugging Face Hub (or the server HF_ENDPOINT names), into data_dir/hub."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    repo, sep, filename = source.partition(":")
    if not sep or not filename.endswith(".gguf"):
        raise InvalidRequest(f"'{source}' is not repo_id:file.gguf.", param="model")
    path = Path(hf_hub_download(repo, filename, cache_dir=data_dir / "hub"))
    # The Hub names a large file by its SHA-256 (its LFS etag): check the bytes against it.
    etag = (get_hf_file_metadata(hf_hub_url(repo, filename)).etag or "").strip('"')
    if re.fullmatch(r"[0-9a-f]{64}", etag) and _sha256(path) != etag:
        path.unlink(missing_ok=True)
        raise InvalidRequest(f"{source}: the downloaded bytes do not match the Hub's SHA-256 ({etag}); removed.")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def model_from_source(source: str, data_dir: Path, model_id: str | None, template: str | None) -> ModelConfig:
    """The config for a GGUF at a path on this machine, or `repo_id:file.gguf` fetched from the Hub
    (blocking: a download can take minutes)."""
    path = Path(source)
    if not path.exists() and ":" in source and not source.startswith(("/", ".")):
        path = from_hub(source, data_dir)
    elif not path.is_file():
        raise InvalidRequest(f"{source} is neither a file here nor repo_id:file.gguf.", param="source")
    return chat_model_config(path, model_id, template)


async def user_models(db: Database) -> list[ModelConfig]:
    async with db.sessions() as session:
        rows = (await session.scalars(select(UserModelRow).order_by(UserModelRow.created_at))).all()
    return [ModelConfig(**json.loads(row.config)) for row in rows]


async def add_user_model(db: Database, config: ModelConfig, taken: set[str]) -> None:
    """Store a model every replica will serve; 400 if its id is taken (configured, or added before)."""
    taken_error = InvalidRequest(f"A model named '{config.id}' is served already: choose another id.", param="id")
    if config.id in taken or config.versioned_id in taken:
        raise taken_error
    entry = config.model_dump(mode="json", exclude_defaults=True) | {"id": config.id, "version": config.version}
    try:
        async with db.sessions() as session, session.begin():
            session.add(UserModelRow(id=config.id, config=json.dumps(entry), created_at=int(time.time())))
    except IntegrityError:  # another replica added the same id meanwhile
        raise taken_error from None


async def remove_user_model(db: Database, model_id: str) -> bool:
    async with db.sessions() as session, session.begin():
        gone = await session.execute(delete(UserModelRow).where(UserModelRow.id == model_id))
    return bool(gone.rowcount)  # type: ignore[attr-defined]
