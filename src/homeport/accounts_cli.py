"""`homeport keys|projects|limits`: API keys, projects and their rate limits, changed in the
database directly (each change audited, its actor the local CLI session)."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .api.families import SCOPES
from .cli_common import ConfigOption, console, project_named, with_app, with_store
from .cli_common import settings as _settings
from .protocol.admin import INT32_MAX, INT64_MAX, MAX_DAYS, MAX_USD
from .services.platform.accounts import Accounts
from .services.platform.audit import CLI, AuditLog
from .services.platform.keys import key_scopes
from .services.platform.limits import Limit
from .settings import Settings

__all__ = ["keys_app", "limits_app", "projects_app"]

# Limits, budgets and days as the database columns hold them (protocol/admin.py): past them, click
# answers with a usage error naming the option, as the API answers a 400.
_INT32: dict[str, Any] = {"min": 0, "max": INT32_MAX}
_INT64: dict[str, Any] = {"min": 0, "max": INT64_MAX}

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects: list, archive, opt in to prompt logging.", no_args_is_help=True)
limits_app = typer.Typer(help="Rate limits of keys and projects, per model, per minute and per day.",
                         no_args_is_help=True)  # fmt: skip


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
    project: Annotated[str | None, typer.Option(help="Project the key belongs to (created if new).")] = None,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute (default: unlimited).", **_INT32)] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute (default: unlimited).", **_INT32)] = None,
    rpd: Annotated[int | None, typer.Option(help="Requests per day (default: unlimited).", **_INT32)] = None,
    tpd: Annotated[int | None, typer.Option(help="Tokens per day (default: unlimited).", **_INT64)] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Tokens the key may use in all.", **_INT64)] = None,
    budget_usd: Annotated[
        float | None, typer.Option(help="Spend (by the models' prices) the key may cause.", min=0, max=MAX_USD)
    ] = None,
    expires_in_days: Annotated[
        float | None, typer.Option(help="Key stops working after this many days (negative: expired already).",
                                   min=-MAX_DAYS, max=MAX_DAYS)  # fmt: skip
    ] = None,
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

    key, secret = with_store(_settings(config), create)
    given = (("rpm", rpm), ("tpm", tpm), ("rpd", rpd), ("tpd", tpd), ("budget tokens", budget_tokens),
             ("budget USD", budget_usd))  # fmt: skip
    limits = ", ".join(f"{v} {k}" for k, v in given if v is not None) or "no limits"
    kind = "admin key" if admin else f"project {project or '-'}"
    console.print(f"Created {key.id} ({key.name}, {kind}, {limits}). The secret is shown only now:")
    print(secret)


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List keys (secrets redacted)."""
    for key in with_store(_settings(config), lambda store: store.keys.list_keys()):
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

    if not with_store(_settings(config), revoke):
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
    for p in with_store(_settings(config), lambda store: store.projects.list()):
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
        int | None, typer.Option(help="Delete stored responses (and idle conversations) after N days; 0: keep.",
                                 min=0, max=MAX_DAYS)  # fmt: skip
    ] = None,
    retention_days: Annotated[
        int | None, typer.Option(help="Delete the project's stored data after N days (docs/compliance.md); 0: keep.",
                                 min=0, max=MAX_DAYS)  # fmt: skip
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

    p = with_store(settings, change)
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
        found = await project_named(app_, name)
        if archive is not None:
            await app_.state.project_archive.export(found.id, archive)
        deleted = await app_.state.project_archive.delete(found.id)
        await app_.state.audit.record("project.deleted", CLI, found.id, None, project=(found.id, found.name))
        return deleted

    deleted = with_app(_settings(config), run)
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
        found = await project_named(app_, name)
        return await app_.state.prompt_logs.list(found.id, since, limit)

    for entry in with_app(_settings(config), run):
        print(json.dumps(entry, ensure_ascii=False))


@limits_app.command("set")
def limits_set(
    project: Annotated[str | None, typer.Option(help="The project (by name) the limits apply to.")] = None,
    key: Annotated[str | None, typer.Option(help="The key (by id) the limits apply to.")] = None,
    model: Annotated[str, typer.Option(help="A model id, or * for all models together.")] = "*",
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.", **_INT32)] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.", **_INT32)] = None,
    rpd: Annotated[int | None, typer.Option(help="Requests per day.", **_INT32)] = None,
    tpd: Annotated[int | None, typer.Option(help="Tokens per day.", **_INT64)] = None,
    batch_tpd: Annotated[
        int | None, typer.Option(help="Input tokens its batches may enqueue per day (batch_1_day_max_input_tokens).",
                                 **_INT64)  # fmt: skip
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

    limit = with_store(_settings(config), set_)
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

    for owner, limit in with_store(_settings(config), collect):
        print(f"{owner:40} model {limit.model:28} {_limits_text(limit)}")
