"""API keys (list, create with the secret shown once, revoke) and projects with their limits,
budgets, alerts, prompt logging, retention and guardrail settings. Changes take an admin key and
go through the same functions as the admin API, so they are validated and audited alike."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from ...errors import HomeportError, NotFound, PermissionDenied
from ...protocol import admin as wire
from ...services.platform.keys import ApiKey, key_scopes
from ...services.platform.projects import Project
from ..families import SCOPES
from ..routes.admin import audit, issue_project_key, revoke_project_key, update_rate_limit
from .render import back, page
from .routing import DashboardRoute
from .session import SignedIn, Viewer

router = APIRouter(route_class=DashboardRoute)

_LIMITS = ("max_requests_per_1_minute", "max_tokens_per_1_minute", "max_requests_per_1_day", "max_tokens_per_1_day",
           "batch_1_day_max_input_tokens")  # fmt: skip


def _admin(viewer: Viewer) -> None:
    if not viewer.admin:
        raise PermissionDenied("Changing keys and projects takes an admin key.")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"


async def _keys(request: Request, viewer: Viewer, include_revoked: bool) -> list[ApiKey]:
    if viewer.project_id == "":
        return [viewer.key]
    keys = await request.app.state.keys.list_keys(project_id=viewer.project_id, active=not include_revoked)
    return sorted(keys, key=lambda k: (k.revoked_at is not None, -k.created_at))


@router.get("/dashboard/keys")
async def keys_page(request: Request, viewer: SignedIn) -> Response:
    show_all = request.query_params.get("all") == "1"
    projects = {p.id: p for p in await request.app.state.projects.list(include_archived=False)}
    keys = await _keys(request, viewer, show_all)
    return page(request, viewer, "keys.html", keys=keys, projects=projects, scopes=key_scopes, families=SCOPES,
                models=request.app.state.registry.ids(), show_all=show_all)


def _optional_int(form: Any, name: str, scale: int = 1) -> int | None:
    """A form's number field (empty: None); ValueError for anything else, infinities (1e400) included."""
    raw = str(form.get(name) or "").strip()
    try:
        return None if not raw else int(float(raw) * scale)
    except OverflowError:
        raise ValueError(f"{name} is not a finite number") from None


@router.post("/dashboard/keys")
async def create_key(request: Request, viewer: SignedIn) -> Response:
    _admin(viewer)
    form = await request.form()
    try:
        days = _optional_int(form, "expires_in_days", 86400)
        body = wire.ProjectApiKeyCreate(
            name=str(form.get("name") or ""), models=[m for m in form.getlist("models") if m] or None,
            endpoints=[e for e in form.getlist("endpoints") if e] or None, read_only=form.get("read_only") == "on",
            budget_tokens=_optional_int(form, "budget_tokens"),
            budget_usd=float(str(form.get("budget_usd"))) if form.get("budget_usd") else None,
            max_requests_per_1_minute=_optional_int(form, "rpm"), max_tokens_per_1_minute=_optional_int(form, "tpm"),
            expires_in_seconds=days,
        )  # fmt: skip
        created, secret = await issue_project_key(request, viewer.key, str(form.get("project_id") or ""), body)
    except ValidationError as exc:
        return back("/dashboard/keys", error=f"The key was not created: {_first_error(exc)}")
    except ValueError:
        return back("/dashboard/keys", error="The key was not created: numbers are expected in the limit fields.")
    except HomeportError as exc:
        return back("/dashboard/keys", error=f"The key was not created: {exc.message}")
    # The secret is rendered in this response only: never in a URL, a redirect or a log.
    return page(request, viewer, "key_created.html", created=created, secret=secret)


@router.post("/dashboard/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, viewer: SignedIn) -> Response:
    _admin(viewer)
    found = await request.app.state.keys.get_key(key_id)
    if found is None or found.revoked_at is not None:
        return back("/dashboard/keys", error=f"No live key with id {key_id}.")
    if found.id == viewer.key.id:
        return back("/dashboard/keys", error="You are signed in with this key: sign in with another to revoke it.")
    if found.admin:
        await request.app.state.keys.revoke(key_id)
        await audit(request, viewer.key, "api_key.deleted", key_id)
    else:
        await revoke_project_key(request, viewer.key, found.project_id or "", key_id)
    return back("/dashboard/keys", notice=f"Revoked {found.name} ({found.redacted}).")


# ---------------------------------------------------------------- projects and limits


async def _visible_project(request: Request, viewer: Viewer, project_id: str) -> Project:
    project: Project | None = await request.app.state.projects.get(project_id)
    if project is None or not viewer.sees(project_id):
        raise NotFound(f"No project found with id '{project_id}'.", param="project_id")
    return project


@router.get("/dashboard/projects")
async def projects_page(request: Request, viewer: SignedIn) -> Response:
    if not viewer.admin:
        if viewer.key.project_id is None:
            return page(request, viewer, "projects.html", projects=[], settings=request.app.state.settings)
        return back(f"/dashboard/projects/{viewer.key.project_id}")
    projects = await request.app.state.projects.list(include_archived=True)
    return page(request, viewer, "projects.html", projects=projects, settings=request.app.state.settings)


@router.post("/dashboard/projects")
async def create_project(request: Request, viewer: SignedIn) -> Response:
    _admin(viewer)
    name = str((await request.form()).get("name") or "").strip()
    if not name or len(name) > 200:
        return back("/dashboard/projects", error="A project needs a name of 1 to 200 characters.")
    if await request.app.state.projects.named(name) is not None:
        return back("/dashboard/projects", error=f"A project named '{name}' exists already.")
    project = await request.app.state.projects.create(name)
    await audit(request, viewer.key, "project.created", project.id, {"data": {"name": name, "title": name}},
                project)  # fmt: skip
    return back(f"/dashboard/projects/{project.id}", notice=f"Created project {name}.")


@router.get("/dashboard/projects/{project_id}")
async def project_page(project_id: str, request: Request, viewer: SignedIn) -> Response:
    project = await _visible_project(request, viewer, project_id)
    configured = {x.model: x for x in await request.app.state.limit_rows.of("project", project_id)}
    models = ["*", *request.app.state.registry.ids()]
    keys = await request.app.state.keys.list_keys(project_id=project_id, active=True)
    return page(request, viewer, "project.html", project=project, limits=configured, models=models, keys=keys,
                settings=request.app.state.settings)  # fmt: skip


@router.post("/dashboard/projects/{project_id}/limits")
async def set_limits(project_id: str, request: Request, viewer: SignedIn) -> Response:
    _admin(viewer)
    form = await request.form()
    here = f"/dashboard/projects/{project_id}"
    try:
        values = {name: _optional_int(form, name) for name in _LIMITS}
        body = wire.ProjectRateLimitUpdate(**{k: (0 if v is None else v) for k, v in values.items()})
        await update_rate_limit(request, viewer.key, project_id, f"rl-{form.get('model')}", body)
    except ValidationError as exc:
        return back(here, error=f"Limits not changed: {_first_error(exc)}")
    except ValueError:
        return back(here, error="Limits not changed: whole numbers are expected (empty: no limit).")
    except HomeportError as exc:
        return back(here, error=f"Limits not changed: {exc.message}")
    return back(here, notice=f"Limits on {form.get('model')} saved.")


@router.post("/dashboard/projects/{project_id}/settings")
async def set_settings(project_id: str, request: Request, viewer: SignedIn) -> Response:
    _admin(viewer)
    project = await _visible_project(request, viewer, project_id)
    form = await request.form()
    here = f"/dashboard/projects/{project_id}"
    moderate, action = str(form.get("moderate") or "off"), str(form.get("moderation_action") or "block")
    if moderate not in ("off", "input", "output", "both") or action not in ("block", "flag"):
        return back(here, error="Unknown guardrail setting.")
    try:
        retention = _optional_int(form, "retention_days") or 0
        response_retention = _optional_int(form, "response_retention_days") or 0
    except ValueError:
        return back(here, error="Retention is a whole number of days (empty: keep).")
    if not (0 <= retention <= wire.MAX_DAYS and 0 <= response_retention <= wire.MAX_DAYS):
        return back(here, error=f"Retention is a whole number of days, at most {wire.MAX_DAYS} (empty: keep).")
    changes: dict[str, Any] = {
        "log_prompts": form.get("log_prompts") == "on", "retention_days": retention,
        "response_retention_days": response_retention, "moderate": moderate, "moderation_action": action,
    }  # fmt: skip
    updated = await request.app.state.projects.update(project_id, **changes)
    await audit(request, viewer.key, "project.updated", project_id, {"changes_requested": changes}, updated or project)
    return back(here, notice="Project settings saved.")
