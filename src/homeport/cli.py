"""The `homeport` command: serve, keys."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .logs import configure_logging
from .services.keys import KeyStore
from .settings import Settings
from .storage.db import Database

app = typer.Typer(help="Homeport: the OpenAI API, self-hosted.", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
projects_app = typer.Typer(help="Projects and their shared rate limits.", no_args_is_help=True)
app.add_typer(projects_app, name="projects")
console = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML or TOML settings file.")]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(config_file=config, **given) if config else Settings(**given)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8080).")] = None,
    config: ConfigOption = None,
) -> None:
    """Start the API server; models load in the background (GET /readyz turns 200)."""
    import uvicorn

    from .api.app import create_app

    settings = _settings(config, host=host, port=port)
    configure_logging(settings.log_format)
    first_key = asyncio.run(_bootstrap(settings))
    base_url = f"http://{settings.host}:{settings.port}/v1"
    wanted = settings.load_models
    models = [m for m in settings.models if wanted is None or m.id in wanted]
    console.print(f"[bold]Homeport[/bold] at [cyan]{base_url}[/cyan]")
    for m in models:
        console.print(f"  {m.kind:9} [green]{m.id}[/green]  (pinned: {m.versioned_id})")
    if first_key:
        console.print(f"  API key (shown once, keep it): [yellow]{first_key}[/yellow]")
    elif settings.api_key is not None:
        console.print("  API key: the value of HOMEPORT_API_KEY")
    console.print("  More keys: [bold].venv/bin/homeport keys create --name NAME[/bold]")
    app_ = create_app(settings, progress=_Progress(len(models), base_url))
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level="warning")


class _Progress:
    def __init__(self, total: int, base_url: str) -> None:
        self.total, self.done, self.base_url = total, 0, base_url

    def __call__(self, model_id: str, state: str, seconds: float) -> None:
        if state == "loading":
            console.print(f"[{self.done + 1}/{self.total}] preparing {model_id} …")
            return
        if state != "ready":
            console.print(f"[red]✗ {model_id}: {state}[/red]")
            return
        self.done += 1
        console.print(f"[{self.done}/{self.total}] [green]✓[/green] {model_id} ready in {seconds:.1f}s")
        if self.done == self.total:
            console.print(f"[bold green]Ready.[/bold green] OpenAI(base_url={self.base_url!r}, api_key=KEY)")


async def _bootstrap(settings: Settings) -> str | None:
    """Migrate, and on a fresh install with no key configured, create the first key."""
    db = Database(settings.resolved_database_url)
    try:
        await db.migrate()
        store = KeyStore(db)
        if settings.api_key is not None:
            await store.ensure(settings.api_key.get_secret_value(), name="HOMEPORT_API_KEY")
            return None
        if await store.count_active() == 0:
            _, secret = await store.create("default")
            return secret
        return None
    finally:
        await db.close()


def _with_store(settings: Settings, action):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        db = Database(settings.resolved_database_url)
        try:
            await db.migrate()
            return await action(KeyStore(db))
        finally:
            await db.close()

    return asyncio.run(run())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    project: Annotated[str | None, typer.Option(help="Project the key belongs to (created if new).")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute (default: unlimited).")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute (default: unlimited).")] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Tokens the key may use in all.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Spend (by the models' prices) the key may cause.")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Key stops working after this many days.")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated model ids the key may use.")] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="Only list models and read usage.")] = False,
    config: ConfigOption = None,
) -> None:
    """Create a key; its secret is printed once, on the last line."""
    expires_at = int(time.time() + expires_in_days * 86400) if expires_in_days is not None else None
    allow = [m.strip() for m in models.split(",") if m.strip()] if models else None

    def create(store: KeyStore):  # type: ignore[no-untyped-def]
        return store.create(
            name, project=project, rpm=rpm, tpm=tpm, budget_tokens=budget_tokens, expires_at=expires_at,
            budget_micro_usd=None if budget_usd is None else round(budget_usd * 1e6), models=allow,
            read_only=read_only,
        )  # fmt: skip

    key, secret = _with_store(_settings(config), create)
    given = (("rpm", rpm), ("tpm", tpm), ("budget tokens", budget_tokens), ("budget USD", budget_usd))
    limits = ", ".join(f"{v} {k}" for k, v in given if v is not None) or "no limits"
    console.print(f"Created {key.id} ({key.name}, project {project or '-'}, {limits}). The secret is shown only now:")
    print(secret)


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List keys (secrets redacted)."""
    for key in _with_store(_settings(config), lambda store: store.list_keys()):
        state = "revoked" if key.revoked_at else "active"
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.created_at))
        limits = f"rpm={key.rpm or '-'} tpm={key.tpm or '-'}"
        print(f"{key.id}  {key.redacted}  {state:8} {created}  {limits}  {key.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOption = None) -> None:
    """Revoke a key by id."""
    if not _with_store(_settings(config), lambda store: store.revoke(key_id)):
        console.print(f"No active key {key_id}.")
        raise typer.Exit(1)
    console.print(f"Revoked {key_id}.")


@projects_app.command("set-limits")
def projects_set_limits(
    name: str,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute for all the project's keys.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute for all the project's keys.")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a project if needed and set its limits (omitted: unlimited)."""
    project_id = _with_store(_settings(config), lambda store: store.set_project_limits(name, rpm, tpm))
    console.print(f"Project {name} ({project_id}): rpm={rpm or '-'} tpm={tpm or '-'}")


@projects_app.command("list")
def projects_list(config: ConfigOption = None) -> None:
    """List projects and their limits."""
    for project_id, name, rpm, tpm in _with_store(_settings(config), lambda store: store.projects()):
        print(f"{project_id}  rpm={rpm or '-'} tpm={tpm or '-'}  {name}")


def main() -> None:
    app()
