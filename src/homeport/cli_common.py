"""What the `homeport` commands share: the settings they read, the --config option, the console
for messages, and running a coroutine on the migrated database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from .settings import Settings
from .storage.db import Database

__all__ = ["ConfigOption", "console", "settings", "with_db"]

T = TypeVar("T")

console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML or TOML settings file.")]


def settings(config: Path | None, **overrides: Any) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(config_file=config, **given) if config else Settings(**given)


def with_db(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    """Run `action(db)` on the migrated database."""

    async def run() -> T:
        db = Database(settings.resolved_database_url)
        try:
            await db.migrate()
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(run())
