"""Models a user adds (`homeport models add`, POST /v1/homeport/models): a GGUF's metadata read from
its header, and the `user_models` table the registry of every replica serves beside the
configured models.

A source is a GGUF's path; an installed Python package that ships one (as the default models'
packages do: a .gguf inside it, or an `assemble()` that joins its parts); or a Hub repo, with
`:file.gguf` or without (its only GGUF, or its only Q4_K_M one). A GGUF starts with its key-value
metadata (the architecture, the context length, the chat template) before the tensors; reading
it takes no model load. Hub downloads go through `huggingface_hub` (resumable, into
data_dir/hub, its endpoint set by HF_ENDPOINT).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
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

__all__ = ["gguf_metadata", "user_models", "add_user_model", "remove_user_model", "chat_model_config",
           "package_model_config", "from_hub", "model_from_source", "shard_names"]  # fmt: skip

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The GGUF's metadata (arrays of more than 16 items are left out: the vocabulary). A file that
    says GGUF but whose header does not parse (cut short, or lengths past its end) is a 400."""
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise InvalidRequest(f"{path} is not a GGUF file.", param="model")
        size = path.stat().st_size
        try:
            version, _tensors, count = struct.unpack("<IQQ", f.read(20))
            if version < 2:
                raise InvalidRequest(f"{path} is GGUF version {version}; llama.cpp reads version 2 and later.")
            found = {}
            for _ in range(count):  # each entry takes bytes: a count past the file ends at its end
                key = _string(f, size)
                value = _value(f, struct.unpack("<I", f.read(4))[0], size)
                if value is not ...:
                    found[key] = value
        except (struct.error, _Truncated, RecursionError):
            raise InvalidRequest(f"{path} is not a readable GGUF file: its header is damaged or cut short.",
                                 param="model") from None  # fmt: skip
    return found


class _Truncated(Exception):
    """A length in the header reaches past the end of the file."""


def _string(f: BinaryIO, size: int) -> str:
    (length,) = struct.unpack("<Q", f.read(8))
    if length > size - f.tell():  # never allocate what the file cannot hold
        raise _Truncated
    return f.read(length).decode("utf-8", "replace")


def _value(f: BinaryIO, kind: int, size: int) -> Any:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
    if kind == 8:
        return _string(f, size)
    if kind == 9:
        item, n = struct.unpack("<IQ", f.read(12))
        if item in _SCALARS and n > 16:  # skip a long array of scalars in one seek
            if n * struct.calcsize(_SCALARS[item]) > size - f.tell():
                raise _Truncated
            f.seek(n * struct.calcsize(_SCALARS[item]), 1)
            return ...
        items = [_value(f, item, size) for _ in range(n)]
        return items if n <= 16 else ...
    raise InvalidRequest(f"Unknown GGUF metadata type {kind}.")


def chat_model_config(path: Path, model_id: str | None, template: str | None) -> ModelConfig:
    """The config of a chat model served from this GGUF; its chat template from the file, or `template`."""
    _check_template(path, template)
    stat = path.stat()
    return ModelConfig(id=model_id or _id_from(path.stem), version=f"local-{stat.st_size:x}-{int(stat.st_mtime):x}",
                       kind="chat", backend="llamacpp", path=path.absolute(), chat_template=template,
                       owned_by="user")  # fmt: skip


def _check_template(path: Path, template: str | None) -> None:
    if template is None and not gguf_metadata(path).get("tokenizer.chat_template"):
        raise InvalidRequest(f"{path.name} carries no chat template: give one with --template (chatml or gemma).",
                             param="template")  # fmt: skip


def _id_from(name: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-")


def _installed_package(source: str) -> str | None:
    """The import name of the installed package `source` names (its import or its pip name), if any."""
    return next((n for n in dict.fromkeys((source, source.replace("-", "_").lower())) if _package_root(n)), None)


def _package_root(name: str) -> Path | None:
    spec = importlib.util.find_spec(name) if name.isidentifier() else None
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def package_model_config(
    package: str, data_dir: Path, model_id: str | None, template: str | None
) -> tuple[ModelConfig, Path]:
    """A chat model from an installed package: the one GGUF inside it, or the file its `assemble()`
    builds (and that file here). The config names the package, not a path, so each replica finds
    its own install."""
    from .registry import locate_weights

    root = _package_root(package)
    if root is None:
        raise InvalidRequest(f"{package} is not an installed package.", param="source")
    ggufs = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.gguf"))
    if len(ggufs) > 1:
        raise InvalidRequest(f"{package} ships {len(ggufs)} GGUF files ({', '.join(ggufs)}): give the path of one.",
                             param="source")  # fmt: skip
    if not ggufs and not callable(getattr(_imported(package), "assemble", None)):
        raise InvalidRequest(f"{package} ships no GGUF file (nor an assemble() that builds one).", param="source")
    try:
        version = importlib.metadata.version(importlib.metadata.packages_distributions()[package][0])
    except (KeyError, IndexError, importlib.metadata.PackageNotFoundError):
        version = "0"
    name = model_id or _id_from(Path(ggufs[0]).stem if ggufs else package)
    config = ModelConfig(id=name, version=f"pkg-{version}", kind="chat", backend="llamacpp", package=package,
                         file=ggufs[0] if ggufs else None, chat_template=template, owned_by="user")  # fmt: skip
    path = locate_weights(config, data_dir)
    _check_template(path, template)
    return config, path


def _imported(package: str) -> object:
    try:
        return importlib.import_module(package)
    except Exception:  # an installed package whose own imports fail ships nothing we can use
        return None


def from_hub(source: str, data_dir: Path) -> Path:
    """`repo_id:file.gguf` from the Hugging Face Hub (or the server HF_ENDPOINT names), into
    data_dir/hub; `repo_id` alone takes the repo's only GGUF (or its only Q4_K_M one). A GGUF split
    into shards is named by its first shard and fetched whole (llama.cpp reads the others beside it)."""
    repo, sep, filename = source.partition(":")
    if sep and not filename.endswith(".gguf"):
        raise InvalidRequest(f"'{source}' is not repo_id:file.gguf.", param="source")
    if filename and shard_names(filename)[0] != filename:
        raise InvalidRequest(f"{source} is one shard of a split GGUF: name the first (-00001-of-…).", param="source")
    try:
        filename = filename or _pick_gguf(repo)
        paths = [_fetch(repo, name, data_dir) for name in shard_names(filename)]
    except InvalidRequest:
        raise
    except Exception as exc:  # the Hub or a mirror answered wrongly, or not at all: say so, do not crash
        raise InvalidRequest(f"{source}: the Hub did not give it ({type(exc).__name__}: {exc}).",
                             param="source") from None  # fmt: skip
    return paths[0]


def _fetch(repo: str, filename: str, data_dir: Path) -> Path:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    path = Path(hf_hub_download(repo, filename, cache_dir=data_dir / "hub"))
    # The Hub names a large file by its SHA-256 (its LFS etag): check the bytes against it.
    etag = (get_hf_file_metadata(hf_hub_url(repo, filename)).etag or "").strip('"')
    if re.fullmatch(r"[0-9a-f]{64}", etag) and _sha256(path) != etag:
        path.unlink(missing_ok=True)
        raise InvalidRequest(f"{repo}:{filename}: the downloaded bytes do not match the Hub's SHA-256 ({etag}); "
                             "removed.")  # fmt: skip
    return path


# A GGUF split into shards (llama.cpp's gguf-split): NAME-00001-of-00003.gguf, …; the first stands for the model.
_SHARD = re.compile(r"-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def shard_names(name: str) -> list[str]:
    """A GGUF's file names: itself, or for a first shard every shard of its model (first first)."""
    shard = _SHARD.search(name)
    if shard is None:
        return [name]
    count, stem = int(shard["count"]), name[: shard.start()]
    return [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def _pick_gguf(repo: str) -> str:
    """The GGUF a repo_id alone stands for: its only one, else its only Q4_K_M (the usual default of
    Ollama and LM Studio). A split GGUF counts once, by its first shard; vision projectors (mmproj)
    are not models."""
    from huggingface_hub import list_repo_files

    ggufs = [f for f in list_repo_files(repo) if f.endswith(".gguf") and not Path(f).name.startswith("mmproj")
             and shard_names(f)[0] == f]  # fmt: skip
    q4_k_m = [f for f in ggufs if "q4_k_m" in f.lower()]
    if len(ggufs) == 1 or len(q4_k_m) == 1:
        return ggufs[0] if len(ggufs) == 1 else q4_k_m[0]
    if not ggufs:
        raise InvalidRequest(f"{repo} has no GGUF file.", param="source")
    listed = ", ".join(ggufs[:10]) + (", …" if len(ggufs) > 10 else "")
    raise InvalidRequest(f"{repo} has {len(ggufs)} GGUF files ({listed}): name one as {repo}:FILE.gguf.",
                         param="source")  # fmt: skip


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def model_from_source(
    source: str, data_dir: Path, model_id: str | None, template: str | None
) -> tuple[ModelConfig, Path]:
    """The config for a GGUF at a path on this machine, an installed package's, or a Hub repo's,
    and where its weights are here (blocking: a download can take minutes)."""
    path = Path(source)
    try:
        is_file, exists = path.is_file(), path.exists()
    except OSError:  # a name no file system takes (too long): no file, and no package or repo either
        is_file, exists = False, True
    if is_file:
        return chat_model_config(path, model_id, template), path
    if package := _installed_package(source):
        return package_model_config(package, data_dir, model_id, template)
    a_path = exists or source.startswith(("/", ".")) or (":" not in source and source.endswith(".gguf"))
    if a_path or ("/" not in source and ":" not in source):
        raise InvalidRequest(f"{source} is neither a file here, an installed package, nor a Hub repo_id[:file.gguf].",
                             param="source")  # fmt: skip
    path = from_hub(source, data_dir)
    return chat_model_config(path, model_id, template), path


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
