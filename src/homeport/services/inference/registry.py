"""The model registry: ids, aliases and pinned versions mapped to loaded engines."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...backends.base import ChatEngine, EmbeddingEngine
from ...backends.piper import PiperVoice
from ...backends.toxicity import ToxicityEngine
from ...backends.whisper import WhisperEngine, assemble_parts
from ...errors import EngineOverloaded, HomeportError, InsufficientMemory, InvalidRequest, ModelNotFound
from ...protocol.models import Model, ModelList
from ...settings import ModelConfig, Settings
from ...storage.db import Database
from .model_files import shard_names, user_models
from .openai_names import OPENAI_NAMES

__all__ = ["ModelRegistry", "LoadProgress", "locate_weights"]

Engine = ChatEngine | EmbeddingEngine | ToxicityEngine | WhisperEngine | PiperVoice

log = logging.getLogger(__name__)

# (model id, state, seconds) with state in {"loading", "ready", "deferred: ...", "failed: ..."}
LoadProgress = Callable[[str, str, float], None]

# A request for a model that is not loaded starts its load and is told to retry after this long.
LOADING_RETRY_S = 2


@dataclass
class _Entry:
    config: ModelConfig
    engine: Engine | None = None
    last_used: float = 0.0  # time.monotonic() of its last lookup
    loaded_at: float = 0.0  # time.monotonic() when its engine was built
    size_mb: float = 0.0  # its weights on disk, once loaded (the memory budget's measure)
    loading: asyncio.Task[None] | None = None
    deferred: bool = False  # wanted at start but past the memory budget then: loaded on first use


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._configs = list(settings.models)
        self._user: set[str] = set()  # the ids of models users added (see `sync`)
        self._syncing = asyncio.Lock()
        self._entries = {m.id: _Entry(m) for m in self._configs}
        self._names: dict[str, str] = {}
        for m in self._configs:
            for name in (m.id, m.versioned_id, *m.aliases):
                self._names[name] = m.id
        for alias, target in settings.aliases.items():
            if target not in self._names:
                raise ValueError(f"alias {alias!r} points at unknown model {target!r}")
            self._names[alias] = self._names[target]
        self.openai_names: dict[str, str] = {}
        """OpenAI's model names this registry answers to, and the model each resolves to."""
        if settings.openai_aliases:
            for kind, names in OPENAI_NAMES.items():
                if (default := self._first_of(kind)) is None:
                    continue
                for name in names:
                    if name not in self._names:
                        self._names[name] = self.openai_names[name] = default
        self.ready = asyncio.Event()

    def _first_of(self, kind: str) -> str | None:
        """The default model of a kind: the first configured one that is loaded at start."""
        loads = self._settings.load_models
        return next((m.id for m in self._configs if m.kind == kind and (loads is None or m.id in loads)), None)

    # ---- lookups ------------------------------------------------------------------------

    def allowed(self, name: str, allow: tuple[str, ...] | None) -> bool:
        """Whether a key with this allow-list may use `name` (listed by any of its names)."""
        if allow is None:
            return True
        target = self._names.get(name)
        return any(a == name or (target is not None and self._names.get(a) == target) for a in allow)

    def models(self, allow: tuple[str, ...] | None = None, overrides: dict[str, str] | None = None) -> ModelList:
        """Every name a key may use: the served names, then its project's own (`overrides`)."""
        names = {**self._names, **{name: target for name, target in (overrides or {}).items() if target in
                                   self._entries}}  # fmt: skip
        data = []
        for name, model_id in names.items():
            if not self.allowed(model_id if name in (overrides or {}) else name, allow):
                continue
            cfg = self._entries[model_id].config
            data.append(Model(id=name, created=cfg.created, owned_by=cfg.owned_by))
        return ModelList(data=data)

    def retrieve(self, name: str, allow: tuple[str, ...] | None = None,
                 overrides: dict[str, str] | None = None) -> Model:  # fmt: skip
        target = (overrides or {}).get(name, name)
        if not self.allowed(target, allow):
            raise ModelNotFound(name, param=None)
        cfg = self.config(target, param=None)
        return Model(id=name, created=cfg.created, owned_by=cfg.owned_by)

    def resolve(self, name: str, overrides: dict[str, str] | None = None) -> str:
        """The id of the model that answers to `name`: a project's own alias first, then the served
        names (ids, pinned ids, aliases, OpenAI's names). Unknown: 404 model_not_found."""
        if overrides and name in overrides:
            name = overrides[name]
        return self.config(name).id

    def knows(self, name: str) -> bool:
        return name in self._names

    async def sync(self, db: Database) -> tuple[list[str], list[str]]:
        """Serve the models users have added as the database holds them now — every replica runs
        this, so one that added or removed a model is followed by the others: the new ones are
        served (loaded on first use), the removed ones forgotten and their engines closed.
        Returns (added, removed) ids."""
        async with self._syncing:
            stored = {m.id: m for m in await user_models(db)}
            added = [m for m in stored.values() if m.id not in self._entries]
            for m in added:
                self._configs.append(m)
                self._entries[m.id] = _Entry(m)
                self._user.add(m.id)
                for name in (m.id, m.versioned_id, *m.aliases):
                    self._names.setdefault(name, m.id)
            removed = [model_id for model_id in self._user if model_id not in stored]
            for model_id in removed:
                entry = self._entries.pop(model_id)
                self._configs.remove(entry.config)
                self._user.discard(model_id)
                self._names = {name: target for name, target in self._names.items() if target != model_id}
                if entry.engine is not None:
                    await entry.engine.close()
            return [m.id for m in added], removed

    def user_added(self, model_id: str) -> bool:
        return model_id in self._user

    def names(self, model_id: str) -> list[str]:
        """Every name that resolves to this model: its id, pinned id and aliases."""
        return [name for name, target in self._names.items() if target == model_id]

    def ids(self) -> list[str]:
        """The served models' ids (not aliases), in configuration order."""
        return list(self._entries)

    def config(self, name: str, param: str | None = "model") -> ModelConfig:
        try:
            return self._entries[self._names[name]].config
        except KeyError:
            raise ModelNotFound(name, param=param) from None

    def chat(self, name: str, endpoint: str = "v1/chat/completions") -> tuple[ModelConfig, ChatEngine]:
        cfg, engine = self._engine(name)
        if cfg.kind != "chat":
            raise InvalidRequest(
                f"`{name}` is {_A[cfg.kind]} model and is not supported in the {endpoint} endpoint.", param="model"
            )
        return cfg, engine  # type: ignore[return-value]

    def embedding(self, name: str) -> tuple[ModelConfig, EmbeddingEngine]:
        cfg, engine = self._engine(name)
        if cfg.kind != "embedding":
            raise InvalidRequest(f"`{name}` is not an embedding model.", param="model")
        return cfg, engine  # type: ignore[return-value]

    def transcription(self, name: str) -> tuple[ModelConfig, WhisperEngine]:
        cfg, engine = self._engine(name)
        if cfg.kind != "transcription":
            raise InvalidRequest(f"`{name}` is not a speech recognition model.", param="model")
        return cfg, engine  # type: ignore[return-value]

    def speech(self, name: str) -> tuple[ModelConfig, PiperVoice]:
        cfg, engine = self._engine(name)
        if cfg.kind != "speech":
            raise InvalidRequest(f"`{name}` is not a text-to-speech model.", param="model")
        return cfg, engine  # type: ignore[return-value]

    def moderation(self, name: str) -> tuple[ModelConfig, ToxicityEngine, EmbeddingEngine]:
        """A moderation model: its classifier and the embedding model it also reads."""
        cfg, engine = self._engine(name)
        if cfg.kind != "moderation" or cfg.embedding_model is None:
            raise InvalidRequest(f"`{name}` is not a moderation model.", param="model")
        _, embedder = self._engine(cfg.embedding_model)
        return cfg, engine, embedder  # type: ignore[return-value]

    def _engine(self, name: str) -> tuple[ModelConfig, Engine]:
        entry = self._entries[self._names[name]] if name in self._names else None
        if entry is None:
            raise ModelNotFound(name)
        entry.last_used = time.monotonic()
        if entry.engine is None:
            if not self.ready.is_set():
                raise EngineOverloaded(f"The model `{name}` is still loading; retry shortly.", retry_after=2)
            # Loaded once and unloaded since, deferred at start, or added by a user: load it (now, in the background).
            on_demand = entry.size_mb or entry.deferred or entry.config.id in self._user
            if on_demand and entry.config.backend != "upstream":
                if entry.loading is not None and entry.loading.done():
                    failed, entry.loading = entry.loading.exception(), None
                    if isinstance(failed, HomeportError):  # e.g. it no longer fits the memory budget
                        raise failed
                if entry.loading is None:
                    entry.loading = asyncio.get_running_loop().create_task(self.load_model(entry.config.id))
                raise EngineOverloaded(f"The model `{name}` is loading; retry shortly.", retry_after=LOADING_RETRY_S)
            raise ModelNotFound(name, message=f"The model `{name}` is not loaded on this server (see load_models); "
                                f"an admin can load it: `homeport models load {entry.config.id}`.")  # fmt: skip
        return entry.config, entry.engine

    # ---- lifecycle ----------------------------------------------------------------------

    async def load(self, progress: LoadProgress) -> None:
        """Load configured models one by one, off the event loop. One past the memory budget is
        left for its first request (by then an idle model may have unloaded); other failures stop
        the loading (/readyz reports them)."""
        wanted = self._settings.load_models
        try:
            for entry in self._entries.values():
                if (wanted is not None and entry.config.id not in wanted) or entry.config.backend == "upstream":
                    continue  # not wanted here; or served by other servers (services/upstream.py)
                progress(entry.config.id, "loading", 0.0)
                start = time.perf_counter()
                try:
                    await self.load_model(entry.config.id)
                except InsufficientMemory as exc:
                    entry.deferred = True
                    progress(entry.config.id, f"deferred: {exc}", time.perf_counter() - start)
                    continue
                except Exception as exc:
                    progress(entry.config.id, f"failed: {exc}", time.perf_counter() - start)
                    raise
                progress(entry.config.id, "ready", time.perf_counter() - start)
        finally:
            self.ready.set()

    async def load_model(self, model_id: str) -> None:
        """Load a configured model now (off the event loop), if the memory budget has room for it."""
        entry = self._entries.get(model_id)
        if entry is None:
            raise ModelNotFound(model_id)
        if entry.engine is not None or entry.config.backend == "upstream":
            return
        size = await asyncio.to_thread(_size_mb, entry.config, self._settings.data_dir)
        budget = self._settings.models_memory_mb
        used = sum(e.size_mb for e in self._entries.values() if e.engine is not None)
        if budget is not None and used + size > budget:
            raise InsufficientMemory(
                f"The model `{model_id}` needs {size:.0f} MB; the models' memory budget is {budget} MB, "
                f"{used:.0f} MB of it in use. Unload a model first, or raise models_memory_mb.", param="model"
            )
        entry.engine = await asyncio.to_thread(_build_engine, entry.config, self._settings)
        entry.size_mb, entry.last_used = size, time.monotonic()
        entry.loaded_at = entry.last_used

    async def unload_model(self, model_id: str) -> bool:
        """Free a loaded model's engine (requests running on it fail); False if it was not loaded."""
        entry = self._entries.get(model_id)
        if entry is None:
            raise ModelNotFound(model_id)
        engine, entry.engine = entry.engine, None
        if engine is None:
            return False
        await engine.close()
        return True

    async def unload_idle(self, keep_alive_s: float) -> list[str]:
        """Unload the models no request has asked for in `keep_alive_s` (Ollama's keep_alive). A
        model just loaded counts as used when the request that started its load was told to come
        back (LOADING_RETRY_S later): a keep-alive shorter than that would unload it before then."""
        now, gone = time.monotonic(), []
        for entry in self._entries.values():
            used = max(entry.last_used, entry.loaded_at + LOADING_RETRY_S)
            if entry.engine is not None and now - used > keep_alive_s and not _busy(entry.engine):
                await self.unload_model(entry.config.id)
                gone.append(entry.config.id)
        return gone

    def states(self) -> list[dict[str, object]]:
        """Each configured model: loaded or not, its size once loaded, seconds since its last use."""
        now = time.monotonic()
        return [{"id": e.config.id, "kind": e.config.kind, "backend": e.config.backend,
                 "loaded": e.engine is not None or e.config.backend == "upstream", "size_mb": round(e.size_mb, 1),
                 "idle_s": round(now - e.last_used, 1) if e.last_used else None}
                for e in self._entries.values()]  # fmt: skip

    def queue_depths(self) -> dict[str, Callable[[], int]]:
        """Per engine that queues: a function giving its running + waiting requests (0 while unloaded)."""
        def depth(entry: _Entry) -> Callable[[], int]:
            return lambda: entry.engine.queue_depth() if entry.engine is not None else 0  # type: ignore[union-attr]

        return {e.config.id: depth(e) for e in self._entries.values() if hasattr(e.engine, "queue_depth")}

    def engine_stats(self) -> dict[str, dict[str, float]]:
        """Per loaded engine that reports them: its counters and gauges (see metrics.py)."""
        return {
            e.config.id: e.engine.stats()  # type: ignore[union-attr]
            for e in self._entries.values()
            if hasattr(e.engine, "stats")
        }

    def loaded(self) -> list[str]:
        return [e.config.id for e in self._entries.values() if e.engine is not None]

    def set_engine(self, model_id: str, engine: Engine) -> None:
        """Install an engine directly (tests, embedding Homeport in another program)."""
        self._entries[model_id].engine = engine

    async def close(self) -> None:
        for entry in self._entries.values():
            if entry.engine is not None:
                await entry.engine.close()
                entry.engine = None


def _busy(engine: Engine) -> bool:
    depth = getattr(engine, "queue_depth", None)
    return bool(depth is not None and depth())


def _size_mb(cfg: ModelConfig, data_dir: Path) -> float:
    """The weights' size on disk, in MB: what the memory budget counts (an engine takes about that)."""
    if cfg.backend == "fake":
        return 1.0
    try:
        path = locate_weights(cfg, data_dir)
    except HomeportError:
        return 0.0
    if path.is_file():  # a GGUF split into shards: all of them, beside its first
        files = [path.with_name(name) for name in shard_names(path.name) if path.with_name(name).is_file()]
    else:
        files = [p for p in path.rglob("*") if p.is_file()]
    return sum(f.stat().st_size for f in files) / 1e6


def locate_weights(cfg: ModelConfig, data_dir: Path) -> Path:
    """The weights on disk: an explicit path, a file inside a package, one it assembles, or a
    directory joined from several packages (`parts`, checked against `sha256`)."""
    if cfg.path is not None:
        return cfg.path
    if cfg.parts:
        try:
            return assemble_parts(cfg.parts, data_dir / "models" / cfg.id, cfg.sha256 or "")
        except (FileNotFoundError, ValueError) as exc:
            raise HomeportError(f"model {cfg.id!r}: {exc}") from exc
    if cfg.package is None:
        raise HomeportError(f"model {cfg.id!r} has neither `path` nor `package`")
    spec = importlib.util.find_spec(cfg.package)
    if spec is None or not spec.submodule_search_locations:
        raise HomeportError(f"model {cfg.id!r} needs the Python package {cfg.package!r}; run ./run setup")
    if cfg.file is not None:
        return Path(next(iter(spec.submodule_search_locations))) / cfg.file
    # Packages that ship a GGUF in parts provide assemble(path) (checks the sha256).
    module = importlib.import_module(cfg.package)
    target = data_dir / "models" / cfg.id / f"{cfg.id}-{cfg.version}.gguf"
    return Path(module.assemble(target))


_A = {"chat": "a chat", "embedding": "an embedding", "moderation": "a moderation",
      "transcription": "a speech recognition", "speech": "a text-to-speech"}  # fmt: skip


def _build_engine(cfg: ModelConfig, settings: Settings) -> Engine:
    if cfg.backend == "fake":
        from ...backends.fake import FakeChatEngine, FakeEmbeddingEngine

        if cfg.kind != "chat":
            return FakeEmbeddingEngine()
        return FakeChatEngine(reply_tokens=cfg.fake_reply_tokens, delay_s=cfg.fake_token_delay_s)
    engine = settings.engine
    path = locate_weights(cfg, settings.data_dir)
    if cfg.backend == "whisper":
        return WhisperEngine(path, threads=engine.audio_threads or (os.cpu_count() or 1), queue_size=engine.queue_size,
                             retry_after=engine.retry_after_s, multilingual=cfg.multilingual,
                             nice=engine.audio_nice)  # fmt: skip
    if cfg.backend == "piper":
        return PiperVoice(path, threads=engine.audio_threads, queue_size=engine.queue_size,
                          retry_after=engine.retry_after_s, nice=engine.audio_nice)
    if cfg.backend == "toxicity":
        return ToxicityEngine(path)
    if cfg.backend == "bert":
        from ...backends.bert import BertEngine

        return BertEngine(path, max_tokens=cfg.context_length or 512, runtime=engine.embedding_runtime,
                          threads=engine.threads or None)  # fmt: skip
    from ...backends.llamacpp.engine import LlamaCppEngine

    return LlamaCppEngine(
        path, settings=settings.engine, context_length=cfg.context_length, chat_template=cfg.chat_template
    )
