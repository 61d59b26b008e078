"""The `homeport` command: serve, migrate, keys, projects, limits, usage (models: models_cli.py;
batches: batch_cli.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .api.families import SCOPES
from .batch_cli import batches_app
from .cli_common import ConfigOption, console
from .cli_common import settings as _settings
from .logs import configure_logging
from .models_cli import models_app
from .services.platform.accounts import Accounts, prepare
from .services.platform.audit import CLI, AuditLog, user_reference
from .services.platform.keys import key_scopes
from .services.platform.limits import Limit
from .settings import Settings
from .storage.db import Database

app = typer.Typer(help="Homeport: the OpenAI API, self-hosted.", no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
projects_app = typer.Typer(help="Projects: list, archive, opt in to prompt logging.", no_args_is_help=True)
app.add_typer(projects_app, name="projects")
assistants_app = typer.Typer(help="The Assistants API's threads: move them to conversations.", no_args_is_help=True)
app.add_typer(assistants_app, name="assistants")
limits_app = typer.Typer(help="Rate limits of keys and projects, per model, per minute and per day.",
                         no_args_is_help=True)  # fmt: skip
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
        return await prepare(Accounts.open(db), _api_key(settings), first_key=True)
    finally:
        await db.close()


def _api_key(settings: Settings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key is not None else None


def _with_store(settings: Settings, action):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        db = Database(settings.resolved_database_url)
        try:
            accounts = Accounts.open(db)
            await prepare(accounts, _api_key(settings), first_key=False)
            return await action(accounts)
        finally:
            await db.close()

    return asyncio.run(run())


def _with_app(settings: Settings, action):  # type: ignore[no-untyped-def]
    """Run `action(app)` on the app's services, without serving (no models are loaded)."""
    from .api.app import create_app

    async def run():  # type: ignore[no-untyped-def]
        app_ = create_app(settings, progress=lambda *a: None)
        try:
            await prepare(Accounts.open(app_.state.db), _api_key(settings), first_key=False)
            return await action(app_)
        finally:
            await app_.state.db.close()

    return asyncio.run(run())


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

    print(json.dumps({"user": user, "deleted": _with_app(_settings(config), run)}))


@app.command("export")
def export_project(
    project: Annotated[str, typer.Option(help="The project, by name.")],
    to: Annotated[Path, typer.Option(help="The archive to write (.tar.gz).")],
    config: ConfigOption = None,
) -> None:
    """Write a project's data (JSONL per table, files' bytes) to a portable archive."""

    async def run(app_: Any) -> dict[str, int]:
        found = await _project_named(app_, project)
        return await app_.state.project_archive.export(found.id, to)

    counts = _with_app(_settings(config), run)
    print(json.dumps({"project": project, "archive": str(to), "rows": counts}))


async def _project_named(app_: Any, name: str) -> Any:
    found = next((p for p in await app_.state.projects.list(include_archived=True) if p.name == name), None)
    if found is None:
        console.print(f"No project named {name}.")
        raise typer.Exit(1)
    return found


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    project: Annotated[str | None, typer.Option(help="Project the key belongs to (created if new).")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute (default: unlimited).")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute (default: unlimited).")] = None,
    rpd: Annotated[int | None, typer.Option(help="Requests per day (default: unlimited).")] = None,
    tpd: Annotated[int | None, typer.Option(help="Tokens per day (default: unlimited).")] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Tokens the key may use in all.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Spend (by the models' prices) the key may cause.")] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Key stops working after this many days.")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated model ids the key may use.")] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="Only list models and read usage.")] = False,
    endpoints: Annotated[
        str | None, typer.Option(help=f"Comma-separated endpoint families the key may call: {', '.join(SCOPES)}.")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="An admin key: manages projects, keys, limits.")] = False,
    config: ConfigOption = None,
) -> None:
    """Create a key; its secret is printed once, on the last line."""
    families = [f.strip() for f in endpoints.split(",") if f.strip()] if endpoints else None
    if families and (unknown := set(families) - set(SCOPES)):
        console.print(f"Unknown endpoint families: {', '.join(sorted(unknown))} (known: {', '.join(SCOPES)}).")
        raise typer.Exit(2)
    if admin and project:
        console.print("An admin key belongs to no project.")
        raise typer.Exit(2)
    expires_at = int(time.time() + expires_in_days * 86400) if expires_in_days is not None else None
    allow = [m.strip() for m in models.split(",") if m.strip()] if models else None

    async def create(store: Accounts):  # type: ignore[no-untyped-def]
        created = await store.keys.create(
            name, project=project, limits=Limit("key", "", "*", rpm, tpm, rpd, tpd), budget_tokens=budget_tokens,
            expires_at=expires_at, budget_micro_usd=None if budget_usd is None else round(budget_usd * 1e6),
            models=allow, read_only=read_only, admin=admin, endpoints=families,
        )  # fmt: skip
        key = created[0]
        await _audit(store, "api_key.created", key.id, {"data": {"scopes": key_scopes(key)}}, key.project_id)
        return created

    key, secret = _with_store(_settings(config), create)
    given = (("rpm", rpm), ("tpm", tpm), ("rpd", rpd), ("tpd", tpd), ("budget tokens", budget_tokens),
             ("budget USD", budget_usd))  # fmt: skip
    limits = ", ".join(f"{v} {k}" for k, v in given if v is not None) or "no limits"
    kind = "admin key" if admin else f"project {project or '-'}"
    console.print(f"Created {key.id} ({key.name}, {kind}, {limits}). The secret is shown only now:")
    print(secret)


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List keys (secrets redacted)."""
    for key in _with_store(_settings(config), lambda store: store.keys.list_keys()):
        state = "revoked" if key.revoked_at else "active"
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.created_at))
        kind = "admin" if key.admin else (key.project_id or "-")
        print(f"{key.id}  {key.redacted}  {state:8} {created}  {kind:29} {_limits_text(key.limit())}  {key.name}")


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOption = None) -> None:
    """Revoke a key by id."""
    async def revoke(store: Accounts) -> bool:
        found = await store.keys.get_key(key_id)
        revoked = await store.keys.revoke(key_id)
        if revoked and found is not None:
            await _audit(store, "api_key.deleted", key_id, None, found.project_id)
        return revoked

    if not _with_store(_settings(config), revoke):
        console.print(f"No active key {key_id}.")
        raise typer.Exit(1)
    console.print(f"Revoked {key_id}.")


async def _audit(store: Accounts, kind: str, resource_id: str, details: dict | None, project_id: str | None) -> None:
    """Append a change made here to the audit log, its actor the local CLI session."""
    project = await store.projects.get(project_id) if project_id else None
    await AuditLog(store.db).record(kind, CLI, resource_id, details,
                                    project=None if project is None else (project.id, project.name))  # fmt: skip


def _limits_text(limit: Limit | None) -> str:
    given = [] if limit is None else [("rpm", limit.rpm), ("tpm", limit.tpm), ("rpd", limit.rpd), ("tpd", limit.tpd)]
    return " ".join(f"{k}={v}" for k, v in given if v is not None) or "no limits"


@projects_app.command("list")
def projects_list(config: ConfigOption = None) -> None:
    """List projects (archived ones too)."""
    for p in _with_store(_settings(config), lambda store: store.projects.list()):
        state = "archived" if p.archived_at else "active"
        logging = "  prompts logged" if p.log_prompts else ""
        moderation = f"  moderation {p.moderate} ({p.moderation_action})" if p.moderate else ""
        print(f"{p.id}  {state:8}  {p.name}{logging}{moderation}")


class Moderate(StrEnum):
    input = "input"
    output = "output"
    both = "both"
    off = "off"


class ModerationAction(StrEnum):
    block = "block"
    flag = "flag"


@projects_app.command("set")
def projects_set(
    name: str,
    log_prompts: Annotated[
        bool | None, typer.Option("--log-prompts/--no-log-prompts", help="Log this project's prompts and outputs.")
    ] = None,
    archive: Annotated[bool | None, typer.Option("--archive/--unarchive", help="Archived: its keys stop.")] = None,
    response_retention_days: Annotated[
        int | None, typer.Option(help="Delete stored responses (and idle conversations) after N days; 0: keep.")
    ] = None,
    retention_days: Annotated[
        int | None, typer.Option(help="Delete the project's stored data after N days (docs/compliance.md); 0: keep.")
    ] = None,
    moderate: Annotated[
        Moderate | None, typer.Option(help="Moderate the inputs, the outputs or both of chat, completions and "
                                           "responses (docs/moderations.md); off: no guardrail.")
    ] = None,
    moderation_action: Annotated[
        ModerationAction | None, typer.Option(help="A flagged request is blocked (400) or flagged (recorded, served).")
    ] = None,
    alias: Annotated[
        list[str] | None, typer.Option(help="NAME=MODEL: this project's requests for NAME go to MODEL (repeat for "
                                            "more); NAME= removes it.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a project if needed and change its settings."""
    settings = _settings(config)
    wanted = _aliases(settings, alias or [])

    async def change(store: Accounts):  # type: ignore[no-untyped-def]
        project_id = await store.projects.ensure(name)
        guard = moderate.value if moderate else None
        action = moderation_action.value if moderation_action else None
        aliases = None
        if wanted:
            current = await store.projects.get(project_id)
            merged = {**(current.model_aliases if current else {}), **wanted}
            aliases = {k: v for k, v in merged.items() if v}
        changed = await store.projects.update(project_id, archived=archive, log_prompts=log_prompts,
                                              response_retention_days=response_retention_days,
                                              retention_days=retention_days, moderate=guard,
                                              moderation_action=action, model_aliases=aliases)  # fmt: skip
        asked = {"log_prompts": log_prompts, "response_retention_days": response_retention_days,
                 "retention_days": retention_days, "moderate": guard, "moderation_action": action,
                 "model_aliases": aliases}  # fmt: skip
        if changes := {k: v for k, v in asked.items() if v is not None}:
            await _audit(store, "project.updated", project_id, {"changes_requested": changes}, project_id)
        if archive:
            await _audit(store, "project.archived", project_id, None, project_id)
        return changed

    p = _with_store(settings, change)
    names = ", ".join(f"{k} → {v}" for k, v in sorted(p.model_aliases.items())) or "none"
    console.print(f"Project {p.name} ({p.id}): {'archived' if p.archived_at else 'active'}, "
                  f"prompts {'logged' if p.log_prompts else 'not logged'}, responses "
                  f"{f'kept {p.response_retention_days} days' if p.response_retention_days else 'kept'}, "
                  f"moderation {f'{p.moderate} ({p.moderation_action})' if p.moderate else 'off'}, "
                  f"model aliases {names}")  # fmt: skip


def _aliases(settings: Settings, pairs: list[str]) -> dict[str, str]:
    """NAME=MODEL pairs, MODEL any name of a served model (kept as its id); NAME= removes NAME."""
    from .errors import ModelNotFound
    from .services.inference.registry import ModelRegistry

    registry = ModelRegistry(settings)
    found = {}
    for pair in pairs:
        name, eq, target = pair.partition("=")
        if not eq or not name.strip():
            raise typer.BadParameter(f"'{pair}' is not NAME=MODEL.", param_hint="--alias")
        if target:
            try:
                target = registry.resolve(target)
            except ModelNotFound:
                raise typer.BadParameter(f"'{target}' is not a served model.", param_hint="--alias") from None
        found[name.strip()] = target
    return found


@projects_app.command("delete")
def projects_delete(
    name: str,
    archive: Annotated[Path | None, typer.Option(help="Export the project's data here first (.tar.gz).")] = None,
    no_archive: Annotated[bool, typer.Option("--no-archive", help="Delete without an archive.")] = False,
    config: ConfigOption = None,
) -> None:
    """Delete a project and all of its data (keys, files, stores, threads, responses, usage…)."""
    if (archive is None) == (not no_archive):
        console.print("Give --archive PATH (exported first), or --no-archive.")
        raise typer.Exit(2)

    async def run(app_: Any) -> dict[str, int]:
        found = await _project_named(app_, name)
        if archive is not None:
            await app_.state.project_archive.export(found.id, archive)
        deleted = await app_.state.project_archive.delete(found.id)
        await app_.state.audit.record("project.deleted", CLI, found.id, None, project=(found.id, found.name))
        return deleted

    deleted = _with_app(_settings(config), run)
    print(json.dumps({"project": name, "archive": None if archive is None else str(archive), "deleted": deleted}))


@projects_app.command("prompts")
def projects_prompts(
    name: str,
    since: Annotated[int, typer.Option(help="From this Unix time.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    config: ConfigOption = None,
) -> None:
    """Print a project's prompt logs (it must have opted in with --log-prompts), one JSON per line."""

    async def run(app_: Any) -> list[dict[str, Any]]:
        found = await _project_named(app_, name)
        return await app_.state.prompt_logs.list(found.id, since, limit)

    for entry in _with_app(_settings(config), run):
        print(json.dumps(entry, ensure_ascii=False))


@limits_app.command("set")
def limits_set(
    project: Annotated[str | None, typer.Option(help="The project (by name) the limits apply to.")] = None,
    key: Annotated[str | None, typer.Option(help="The key (by id) the limits apply to.")] = None,
    model: Annotated[str, typer.Option(help="A model id, or * for all models together.")] = "*",
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    rpd: Annotated[int | None, typer.Option(help="Requests per day.")] = None,
    tpd: Annotated[int | None, typer.Option(help="Tokens per day.")] = None,
    batch_tpd: Annotated[
        int | None, typer.Option(help="Input tokens its batches may enqueue per day (batch_1_day_max_input_tokens).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Set a project's or a key's limits on a model (those not given: no limit; none given: remove)."""
    if (project is None) == (key is None):
        console.print("Give exactly one of --project NAME or --key ID.")
        raise typer.Exit(2)

    async def set_(store: Accounts):  # type: ignore[no-untyped-def]
        found = None if project is not None else await store.keys.get_key(key or "")
        if project is not None:
            owner = ("project", await store.projects.ensure(project))
        elif found is None:
            return None
        else:
            owner = ("key", key or "")
        limit = await store.limits.set(Limit(*owner, model, rpm, tpm, rpd, tpd, batch_tpd))
        changes = {k: v for k, v in (("rpm", rpm), ("tpm", tpm), ("rpd", rpd), ("tpd", tpd), ("batch_tpd", batch_tpd))
                   if v is not None}  # fmt: skip
        scope = owner[1] if project is not None else (found.project_id if found else None)
        await _audit(store, "rate_limit.updated", f"rl-{model}", {"changes_requested": {"owner": owner[1], **changes}},
                     scope)  # fmt: skip
        return limit

    limit = _with_store(_settings(config), set_)
    if limit is None:
        console.print(f"No key {key}.")
        raise typer.Exit(1)
    console.print(f"{limit.owner} {project or key}, model {model}: {_limits_text(limit)}")


@limits_app.command("list")
def limits_list(config: ConfigOption = None) -> None:
    """Every configured limit."""

    async def collect(store: Accounts):  # type: ignore[no-untyped-def]
        rows = []
        for p in await store.projects.list():
            rows += [(f"project {p.name}", x) for x in await store.limits.of("project", p.id)]
        for k in await store.keys.list_keys(active=True):
            rows += [(f"key {k.id} ({k.name})", x) for x in k.limits]
        return rows

    for owner, limit in _with_store(_settings(config), collect):
        print(f"{owner:40} model {limit.model:28} {_limits_text(limit)}")


@assistants_app.command("export-thread")
def export_thread_(thread_id: str, config: ConfigOption = None) -> None:
    """Copy a thread's messages into a new conversation (Responses API); prints its id."""
    from .errors import NotFound
    from .services.assistants.export import export_thread

    try:
        conversation = _with_store(_settings(config), lambda store: export_thread(store.db, thread_id))
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

    pages, costs = _with_store(_settings(config), report)
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
