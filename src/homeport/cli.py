"""The `homeport` command: serve, migrate, erase, export, usage (keys, projects, limits:
accounts_cli.py; models: models_cli.py; batches: batch_cli.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .accounts_cli import keys_app, limits_app, projects_app
from .batch_cli import batches_app
from .cli_common import ConfigOption, api_key, console, project_named, with_app, with_store
from .cli_common import settings as _settings
from .logs import configure_logging
from .models_cli import models_app
from .services.platform.accounts import Accounts, prepare
from .services.platform.audit import CLI, user_reference
from .settings import Settings
from .storage.db import Database

app = typer.Typer(help="Homeport: the OpenAI API, self-hosted.", no_args_is_help=True, add_completion=False)
app.add_typer(keys_app, name="keys")
app.add_typer(projects_app, name="projects")
assistants_app = typer.Typer(help="The Assistants API's threads: move them to conversations.", no_args_is_help=True)
app.add_typer(assistants_app, name="assistants")
app.add_typer(limits_app, name="limits")
app.add_typer(batches_app, name="batches")
app.add_typer(models_app, name="models")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8080).")] = None,
    config: ConfigOption = None,
) -> None:
    """Start the API server; models load in the background (GET /readyz turns 200)."""
    from .api.app import create_app
    from .api.server import serve as serve_http

    settings = _settings(config, host=host, port=port)
    configure_logging(settings.log_format)
    first_key = asyncio.run(_bootstrap(settings))
    base_url = f"http://{settings.host}:{settings.port}/v1"
    wanted = settings.load_models
    models = [m for m in settings.models if wanted is None or m.id in wanted]
    console.print(f"[bold]Homeport[/bold] at [cyan]{base_url}[/cyan]")
    for m in models:
        console.print(f"  {m.kind:13} [green]{m.id}[/green]  (pinned: {m.versioned_id})")
    if first_key:
        console.print(f"  API key (shown once, keep it): [yellow]{first_key}[/yellow]")
    elif settings.api_key is not None:
        console.print("  API key: the value of HOMEPORT_API_KEY")
    console.print("  More keys: [bold].venv/bin/homeport keys create --name NAME[/bold]")
    app_ = create_app(settings, progress=_Progress(len(models), base_url))
    serve_http(app_, settings)


class _Progress:
    def __init__(self, total: int, base_url: str) -> None:
        self.total, self.done, self.base_url = total, 0, base_url

    def __call__(self, model_id: str, state: str, seconds: float) -> None:
        if state == "loading":
            console.print(f"[{self.done + 1}/{self.total}] preparing {model_id} …")
            return
        if state.startswith("deferred: "):  # past the memory budget: loaded on its first request
            self.done += 1
            console.print(f"[{self.done}/{self.total}] [yellow]–[/yellow] {model_id} not loaded now, but on its first "
                          f"request: {state.removeprefix('deferred: ')}")  # fmt: skip
        elif state != "ready":
            console.print(f"[red]✗ {model_id}: {state}[/red]")
            return
        else:
            self.done += 1
            console.print(f"[{self.done}/{self.total}] [green]✓[/green] {model_id} ready in {seconds:.1f}s")
        if self.done == self.total:
            console.print(f"[bold green]Ready.[/bold green] OpenAI(base_url={self.base_url!r}, api_key=KEY)")


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Bring the database schema up to date (serve does this too; safe with replicas starting at once)."""
    settings = _settings(config)

    async def run() -> None:
        db = Database(settings.resolved_database_url)
        try:
            await db.migrate()
        finally:
            await db.close()

    asyncio.run(run())
    console.print("Database is up to date.")


async def _bootstrap(settings: Settings) -> str | None:
    """Migrate, and on a fresh install with no key configured, create the first key."""
    db = Database(settings.resolved_database_url)
    try:
        return await prepare(Accounts.open(db), api_key(settings), first_key=True)
    finally:
        await db.close()



@app.command()
def erase(
    user: Annotated[str, typer.Option(help="The end user: their `user`, `safety_identifier` or metadata.user_id.")],
    config: ConfigOption = None,
) -> None:
    """Delete every stored object that names an end user (GDPR erasure); prints what was deleted."""

    async def run(app_: Any) -> dict[str, int]:
        deleted = await app_.state.project_data.erase_user(user)
        await app_.state.audit.record("resource.deleted", CLI, user_reference(user), {"data": {"deleted": deleted}})
        return deleted

    print(json.dumps({"user": user, "deleted": with_app(_settings(config), run)}))


@app.command("export")
def export_project(
    project: Annotated[str, typer.Option(help="The project, by name.")],
    to: Annotated[Path, typer.Option(help="The archive to write (.tar.gz).")],
    config: ConfigOption = None,
) -> None:
    """Write a project's data (JSONL per table, files' bytes) to a portable archive."""

    async def run(app_: Any) -> dict[str, int]:
        found = await project_named(app_, project)
        return await app_.state.project_archive.export(found.id, to)

    counts = with_app(_settings(config), run)
    print(json.dumps({"project": project, "archive": str(to), "rows": counts}))




@assistants_app.command("export-thread")
def export_thread_(thread_id: str, config: ConfigOption = None) -> None:
    """Copy a thread's messages into a new conversation (Responses API); prints its id."""
    from .errors import NotFound
    from .services.assistants.export import export_thread

    try:
        conversation = with_store(_settings(config), lambda store: export_thread(store.db, thread_id))
    except NotFound as exc:
        console.print(exc.message)
        raise typer.Exit(1) from None
    console.print(f"Thread {thread_id} copied into a new conversation (the thread stays):")
    print(conversation["id"])


@app.command()
def usage(
    days: Annotated[int, typer.Option(help="How many days back, today included.")] = 7,
    group_by: Annotated[str, typer.Option(help="model, project or key.")] = "model",
    config: ConfigOption = None,
) -> None:
    """Print requests, tokens and cost per day (from the hourly rollups)."""
    from rich.table import Table

    from .services.platform.usage import costs_report, usage_report

    column = {"model": "model", "project": "project_id", "key": "api_key_id"}.get(group_by)
    if column is None:
        console.print("--group-by is one of model, project, key.")
        raise typer.Exit(2)
    start = int(time.time()) // 86400 * 86400 - (days - 1) * 86400

    async def report(store: Accounts):  # type: ignore[no-untyped-def]
        db, window = store.db, {"start_time": start, "end_time": None, "bucket_width": "1d", "limit": days}
        pages = [await usage_report(db, kind, group_by=[column], project_ids=None, models=None, api_key_ids=None,
                                    **window)  # type: ignore[arg-type]
                 for kind in ("completions", "embeddings")]  # fmt: skip
        costs = await costs_report(db, group_by=[] if column == "model" else [column], project_ids=None,
                                   api_key_ids=None, **window)  # type: ignore[arg-type]  # fmt: skip
        return pages, costs

    pages, costs = with_store(_settings(config), report)
    table = Table(title=f"Usage, last {days} days (UTC)")
    for name in ("day", group_by, "kind", "requests", "input tokens", "output tokens"):
        table.add_column(name, justify="right" if "tokens" in name or name == "requests" else "left")
    for kind, page in zip(("completions", "embeddings"), pages, strict=True):
        for bucket in page["data"]:
            day = time.strftime("%Y-%m-%d", time.gmtime(bucket["start_time"]))
            for r in bucket["results"]:
                table.add_row(day, str(r.get(column) or "-"), kind, str(r["num_model_requests"]),
                              str(r["input_tokens"]), str(r.get("output_tokens", "")))  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 160).print(table)  # piped: don't squeeze model ids
    spent = sum(r["amount"]["value"] for b in costs["data"] for r in b["results"])
    print(f"cost: ${spent:.6f}")


def main() -> None:
    app()
