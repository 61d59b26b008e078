"""Settings: defaults, HOMEPORT_* variables, config files (YAML/TOML), precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.settings import Settings


def test_defaults() -> None:
    s = Settings()
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert [m.id for m in s.models] == ["smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2",
                                        "homeport-moderation", "whisper-base", "whisper-tiny-en", "piper-joe"]
    assert s.resolved_database_url.startswith("sqlite+aiosqlite:///")


def test_env_vars_and_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMEPORT_PORT", "9000")
    monkeypatch.setenv("HOMEPORT_ENGINE__QUEUE_SIZE", "3")
    monkeypatch.setenv("HOMEPORT_API_KEY", "sk-env")
    s = Settings()
    assert s.port == 9000 and s.engine.queue_size == 3 and s.api_key.get_secret_value() == "sk-env"


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_config_file_below_env_below_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    if suffix == ".yaml":
        path.write_text("port: 7000\nhost: 0.0.0.0\naliases:\n  gpt-4o-mini: smollm2-135m-instruct\n")
    else:
        path.write_text('port = 7000\nhost = "0.0.0.0"\n[aliases]\ngpt-4o-mini = "smollm2-135m-instruct"\n')
    s = Settings(config_file=path)
    assert (s.port, s.host, s.aliases) == (7000, "0.0.0.0", {"gpt-4o-mini": "smollm2-135m-instruct"})
    monkeypatch.setenv("HOMEPORT_PORT", "7100")
    assert Settings(config_file=path).port == 7100
    assert Settings(config_file=path, port=7200).port == 7200


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("prot: 1\n")
    with pytest.raises(ValueError):
        Settings(config_file=path)
