"""What the `homeport` commands share: the settings they read, the --config option, the console
for messages, and running a coroutine on the migrated database, its accounts, or the app's
services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from .services.platform.accounts import Accounts, prepare
from .settings import Settings
from .storage.db import Database

__all__ = ["ConfigOption", "api_key", "console", "project_named", "settings", "with_app", "with_db", "with_store"]

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


def api_key(settings: Settings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key is not None else None


def with_store(settings: Settings, action):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        db = Database(settings.resolved_database_url)
        try:
            accounts = Accounts.open(db)
            await prepare(accounts, api_key(settings), first_key=False)
            return await action(accounts)
        finally:
            await db.close()

    return asyncio.run(run())


def with_app(settings: Settings, action):  # type: ignore[no-untyped-def]
    """Run `action(app)` on the app's services, without serving (no models are loaded)."""
    from .api.app import create_app

    async def run():  # type: ignore[no-untyped-def]
        app_ = create_app(settings, progress=lambda *a: None)
        try:
            await prepare(Accounts.open(app_.state.db), api_key(settings), first_key=False)
            return await action(app_)
        finally:
            await app_.state.db.close()

    return asyncio.run(run())


async def project_named(app_: Any, name: str) -> Any:
    found = next((p for p in await app_.state.projects.list(include_archived=True) if p.name == name), None)
    if found is None:
        console.print(f"No project named {name}.")
        raise typer.Exit(1)
    return found
