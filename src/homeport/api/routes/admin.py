"""Platform administration with an admin key: OpenAI's /v1/organization shapes for projects,
project API keys, project rate limits and admin keys; /v1/homeport/... where OpenAI has none
(creating a project key, which OpenAI does only in its dashboard)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ...errors import InvalidRequest, NotFound
from ...protocol import admin as wire
from ...services.platform.audit import Actor, AuditLog, AuditQuery, user_reference
from ...services.platform.keys import ApiKey, KeyStore, key_scopes
from ...services.platform.limit_rows import LimitStore
from ...services.platform.limits import Limit
from ...services.platform.projects import Project, ProjectStore
from ..body import parse_body
from ..deps import AdminKey
from ..families import SCOPES
from ..pagination import cursor_page

router = APIRouter()

_UNLIMITED = 0  # how the rate-limit objects write "no limit"


def _page(items: Sequence[BaseModel], after: str | None, limit: int) -> dict[str, Any]:
    return cursor_page(items, lambda x: x.id, after=after, limit=limit, dump=lambda x: x.model_dump())  # type: ignore[attr-defined]


def _store(request: Request) -> KeyStore:
    return request.app.state.keys


def _projects(request: Request) -> ProjectStore:
    return request.app.state.projects


def _limits(request: Request) -> LimitStore:
    return request.app.state.limit_rows


async def audit(request: Request, key: ApiKey, kind: str, resource_id: str, details: dict[str, Any] | None = None,
                 project: Project | None = None) -> None:  # fmt: skip
    """Append the admin key's change to the audit log."""
    audit: AuditLog = request.app.state.audit
    await audit.record(kind, Actor(key_id=key.id), resource_id, details,
                       project=None if project is None else (project.id, project.name))  # fmt: skip


def _project(p: Project) -> wire.Project:
    return wire.Project(
        id=p.id, name=p.name, created_at=p.created_at, archived_at=p.archived_at,
        status="archived" if p.archived_at is not None else "active",
    )  # fmt: skip


async def _found_project(request: Request, project_id: str) -> Project:
    project = await _projects(request).get(project_id)
    if project is None:
        raise NotFound(f"No project found with id '{project_id}'.", param="project_id")
    return project


def _project_key(k: ApiKey) -> wire.ProjectApiKey:
    account = {"id": k.id, "name": k.name, "created_at": k.created_at, "role": "member"}
    return wire.ProjectApiKey(
        redacted_value=k.redacted, name=k.name, created_at=k.created_at, last_used_at=k.last_used_at, id=k.id,
        owner=wire.KeyOwner(service_account=account), expires_at=k.expires_at,
        models=list(k.models) if k.models else None, endpoints=list(k.endpoints) if k.endpoints else None,
        read_only=k.read_only, budget_tokens=k.budget_tokens,
        budget_usd=None if k.budget_micro_usd is None else k.budget_micro_usd / 1e6,
    )  # fmt: skip


async def _found_key(request: Request, project_id: str, key_id: str) -> ApiKey:
    """A live key of this project; another project's key is 'not found' here, not 'forbidden'."""
    key = await _store(request).get_key(key_id)
    if key is None or key.project_id != project_id or key.revoked_at is not None:
        raise NotFound(f"No API key found with id '{key_id}' in project '{project_id}'.", param="api_key_id")
    return key


# ---------------------------------------------------------------- projects


@router.get("/v1/organization/projects")
async def list_projects(
    request: Request, key: AdminKey, limit: int = 20, after: str | None = None, include_archived: bool = False
) -> dict[str, Any]:
    projects = [_project(p) for p in await _projects(request).list(include_archived=include_archived)]
    return _page(projects, after, limit)


@router.post("/v1/organization/projects")
async def create_project(request: Request, key: AdminKey) -> wire.Project:
    body = await parse_body(request, wire.ProjectCreate)
    project = await _projects(request).create(body.name)
    await audit(request, key, "project.created", project.id, {"data": {"name": body.name, "title": body.name}},
                 project)  # fmt: skip
    return _project(project)


@router.get("/v1/organization/projects/{project_id}")
async def retrieve_project(project_id: str, request: Request, key: AdminKey) -> wire.Project:
    return _project(await _found_project(request, project_id))


@router.post("/v1/organization/projects/{project_id}")
async def modify_project(project_id: str, request: Request, key: AdminKey) -> wire.Project:
    body = await parse_body(request, wire.ProjectUpdate)
    project = await _found_project(request, project_id)
    if project.archived_at is not None:
        raise InvalidRequest("An archived project cannot be modified.", param="project_id")
    updated = await _projects(request).update(project_id, name=body.name)
    assert updated is not None
    await audit(request, key, "project.updated", project_id, {"changes_requested": {"title": body.name}}, updated)
    return _project(updated)


@router.post("/v1/organization/projects/{project_id}/archive")
async def archive_project(project_id: str, request: Request, key: AdminKey) -> wire.Project:
    """Archived projects' keys stop working; their usage stays in the reports."""
    await _found_project(request, project_id)
    archived = await _projects(request).update(project_id, archived=True)
    assert archived is not None
    await audit(request, key, "project.archived", project_id, None, archived)
    return _project(archived)


# ---------------------------------------------------------------- project API keys


@router.get("/v1/organization/projects/{project_id}/api_keys")
async def list_project_keys(
    project_id: str, request: Request, key: AdminKey, limit: int = 20, after: str | None = None
) -> dict[str, Any]:
    await _found_project(request, project_id)
    keys = [_project_key(k) for k in await _store(request).list_keys(project_id=project_id, active=True)]
    return _page(keys, after, limit)


@router.get("/v1/organization/projects/{project_id}/api_keys/{api_key_id}")
async def retrieve_project_key(project_id: str, api_key_id: str, request: Request, key: AdminKey) -> wire.ProjectApiKey:
    return _project_key(await _found_key(request, project_id, api_key_id))


@router.delete("/v1/organization/projects/{project_id}/api_keys/{api_key_id}")
async def delete_project_key(project_id: str, api_key_id: str, request: Request, key: AdminKey) -> wire.KeyDeleted:
    """Deleting revokes: the key stops working on every replica within `key_cache_s`; its usage stays."""
    await revoke_project_key(request, key, project_id, api_key_id)
    return wire.KeyDeleted(object="organization.project.api_key.deleted", id=api_key_id)


@router.post("/v1/homeport/projects/{project_id}/api_keys")
async def create_project_key(project_id: str, request: Request, key: AdminKey) -> wire.ProjectApiKeyCreated:
    body = await parse_body(request, wire.ProjectApiKeyCreate)
    created, secret = await issue_project_key(request, key, project_id, body)
    return wire.ProjectApiKeyCreated(**_project_key(created).model_dump(), value=secret)


async def issue_project_key(request: Request, key: ApiKey, project_id: str,
                            body: wire.ProjectApiKeyCreate) -> tuple[ApiKey, str]:  # fmt: skip
    """Create a project key (here and in the dashboard): the key and its secret, shown once."""
    project = await _found_project(request, project_id)
    if project.archived_at is not None:
        raise InvalidRequest("An archived project cannot get new keys.", param="project_id")
    registry = request.app.state.registry
    for i, model in enumerate(body.models or []):
        if not registry.allowed(model, tuple(registry.ids())):  # an id or an alias of one
            raise InvalidRequest(f"The model `{model}` does not exist.", param=f"models.[{i}]")
    for i, family in enumerate(body.endpoints or []):
        if family not in SCOPES:
            raise InvalidRequest(f"Unknown endpoint family '{family}'; known: {', '.join(SCOPES)}.",
                                 param=f"endpoints.[{i}]")  # fmt: skip
    limits = Limit(
        "key", "", "*", body.max_requests_per_1_minute, body.max_tokens_per_1_minute,
        body.max_requests_per_1_day, body.max_tokens_per_1_day,
    )  # fmt: skip
    created, secret = await _store(request).create(
        body.name, project_id=project_id, limits=limits, budget_tokens=body.budget_tokens,
        budget_micro_usd=None if body.budget_usd is None else round(body.budget_usd * 1e6),
        expires_at=None if body.expires_in_seconds is None else int(time.time()) + body.expires_in_seconds,
        models=body.models, read_only=body.read_only, endpoints=body.endpoints,
    )  # fmt: skip
    await audit(request, key, "api_key.created", created.id, {"data": {"scopes": key_scopes(created)}}, project)
    return created, secret


async def revoke_project_key(request: Request, key: ApiKey, project_id: str, key_id: str) -> None:
    """Revoke (here and in the dashboard): the key stops working on every replica within `key_cache_s`."""
    await _found_key(request, project_id, key_id)
    await _store(request).revoke(key_id)
    await audit(request, key, "api_key.deleted", key_id, None, await _found_project(request, project_id))


# ---------------------------------------------------------------- project rate limits


def _rate_limit(model: str, limit: Limit | None) -> wire.ProjectRateLimit:
    def value(v: int | None) -> int:
        return _UNLIMITED if v is None else v

    limit = limit or Limit("project", "", model)
    return wire.ProjectRateLimit(
        id=f"rl-{model}", model=model, max_requests_per_1_minute=value(limit.rpm),
        max_tokens_per_1_minute=value(limit.tpm), max_requests_per_1_day=value(limit.rpd),
        max_tokens_per_1_day=value(limit.tpd), batch_1_day_max_input_tokens=value(limit.batch_tpd),
    )  # fmt: skip


@router.get("/v1/organization/projects/{project_id}/rate_limits")
async def list_rate_limits(
    project_id: str, request: Request, key: AdminKey, limit: int = 100, after: str | None = None
) -> dict[str, Any]:
    """One object per served model, and `*` for the project's limits on all models together."""
    await _found_project(request, project_id)
    configured = {x.model: x for x in await _limits(request).of("project", project_id)}
    models = ["*", *request.app.state.registry.ids()]
    return _page([_rate_limit(m, configured.get(m)) for m in models], after, limit)


@router.post("/v1/organization/projects/{project_id}/rate_limits/{rate_limit_id}")
async def modify_rate_limit(
    project_id: str, rate_limit_id: str, request: Request, key: AdminKey
) -> wire.ProjectRateLimit:
    body = await parse_body(request, wire.ProjectRateLimitUpdate)
    return await update_rate_limit(request, key, project_id, rate_limit_id, body)


async def update_rate_limit(request: Request, key: ApiKey, project_id: str, rate_limit_id: str,
                            body: wire.ProjectRateLimitUpdate) -> wire.ProjectRateLimit:  # fmt: skip
    """Change a project's limits on one model (here and in the dashboard); 0 removes a limit."""
    await _found_project(request, project_id)
    model = rate_limit_id.removeprefix("rl-")
    if not rate_limit_id.startswith("rl-") or (model != "*" and model not in request.app.state.registry.ids()):
        raise NotFound(f"No rate limit found with id '{rate_limit_id}'.", param="rate_limit_id")
    for name in ("max_images_per_1_minute", "max_audio_megabytes_per_1_minute"):
        if getattr(body, name) is not None:
            raise InvalidRequest(f"Homeport does not limit '{name}'.", param=name, code="unsupported_parameter")
    store = _limits(request)
    current = next((x for x in await store.of("project", project_id) if x.model == model), None)
    current = current or Limit("project", project_id, model)

    def merged(new: int | None, old: int | None) -> int | None:
        return old if new is None else (None if new == _UNLIMITED else new)

    updated = Limit(
        "project", project_id, model, merged(body.max_requests_per_1_minute, current.rpm),
        merged(body.max_tokens_per_1_minute, current.tpm), merged(body.max_requests_per_1_day, current.rpd),
        merged(body.max_tokens_per_1_day, current.tpd),
        merged(body.batch_1_day_max_input_tokens, current.batch_tpd),
    )  # fmt: skip
    await store.set(updated)
    changes = body.model_dump(exclude_none=True)
    await audit(request, key, "rate_limit.updated", rate_limit_id, {"changes_requested": changes},
                 await _found_project(request, project_id))  # fmt: skip
    return _rate_limit(model, updated)


# ---------------------------------------------------------------- admin keys


def _admin_key(k: ApiKey) -> wire.AdminApiKey:
    owner = {"type": "service_account", "object": "organization.service_account", "id": k.id, "name": k.name,
             "created_at": k.created_at, "role": "owner"}  # fmt: skip
    return wire.AdminApiKey(
        id=k.id, name=k.name, redacted_value=k.redacted, created_at=k.created_at, expires_at=k.expires_at,
        last_used_at=k.last_used_at, owner=owner,
    )  # fmt: skip


@router.get("/v1/organization/admin_api_keys")
async def list_admin_keys(request: Request, key: AdminKey, limit: int = 20, after: str | None = None) -> dict[str, Any]:
    keys = [_admin_key(k) for k in await _store(request).list_keys(admin=True, active=True)]
    return _page(keys, after, limit)


@router.post("/v1/organization/admin_api_keys")
async def create_admin_key(request: Request, key: AdminKey) -> wire.AdminApiKeyCreated:
    body = await parse_body(request, wire.AdminApiKeyCreate)
    expires_at = None if body.expires_in_seconds is None else int(time.time()) + body.expires_in_seconds
    created, secret = await _store(request).create(body.name, admin=True, expires_at=expires_at)
    await audit(request, key, "api_key.created", created.id, {"data": {"scopes": ["admin"]}})
    return wire.AdminApiKeyCreated(**_admin_key(created).model_dump(), value=secret)


async def _found_admin_key(request: Request, key_id: str) -> ApiKey:
    found = await _store(request).get_key(key_id)
    if found is None or not found.admin or found.revoked_at is not None:
        raise NotFound(f"No admin API key found with id '{key_id}'.", param="key_id")
    return found


@router.get("/v1/organization/admin_api_keys/{key_id}")
async def retrieve_admin_key(key_id: str, request: Request, key: AdminKey) -> wire.AdminApiKey:
    return _admin_key(await _found_admin_key(request, key_id))


@router.delete("/v1/organization/admin_api_keys/{key_id}")
async def delete_admin_key(key_id: str, request: Request, key: AdminKey) -> wire.KeyDeleted:
    await _found_admin_key(request, key_id)
    await _store(request).revoke(key_id)
    await audit(request, key, "api_key.deleted", key_id)
    return wire.KeyDeleted(object="organization.admin_api_key.deleted", id=key_id)


# ---------------------------------------------------------------- audit log


@router.get("/v1/organization/audit_logs")
async def list_audit_logs(request: Request, key: AdminKey, limit: int = 20, after: str | None = None,
                          before: str | None = None) -> dict[str, Any]:  # fmt: skip
    """OpenAI's filters: `effective_at[gt|gte|lt|lte]`, `event_types[]`, `project_ids[]`,
    `actor_ids[]`, `resource_ids[]`. Entries are append-only: this list is the only route."""
    if not 1 <= limit <= 100:
        raise InvalidRequest("'limit' must be between 1 and 100.", param="limit")
    params = request.query_params
    bounds = {}
    for op in ("gt", "gte", "lt", "lte"):
        raw = params.get(f"effective_at[{op}]")
        if raw is not None:
            if not raw.lstrip("-").isdigit():
                raise InvalidRequest(f"'effective_at[{op}]' must be an integer (Unix seconds).", param="effective_at")
            bounds[op] = min(max(int(raw), -(2**63)), 2**63 - 1)  # what a database integer holds; same answer
    query = AuditQuery(
        event_types=tuple(params.getlist("event_types[]")), project_ids=tuple(params.getlist("project_ids[]")),
        actor_ids=tuple(params.getlist("actor_ids[]")), resource_ids=tuple(params.getlist("resource_ids[]")),
        limit=limit, after=after, before=before, **bounds,
    )  # fmt: skip
    audit: AuditLog = request.app.state.audit
    entries, more = await audit.list(query)
    first, last = (entries[0]["id"], entries[-1]["id"]) if entries else (None, None)
    return {"object": "list", "data": entries, "first_id": first, "last_id": last, "has_more": more}


# ---------------------------------------------------------------- erasure


@router.post("/v1/homeport/erasure")
async def erase_user(request: Request, key: AdminKey) -> dict[str, Any]:
    """Delete every stored object whose `user`, `safety_identifier` or `metadata.user_id` names the
    end user (docs/compliance.md); the audit log records it under a hash of the name, not the name."""
    body = await parse_body(request, wire.ErasureCreate)
    deleted = await request.app.state.project_data.erase_user(body.user)
    await audit(request, key, "resource.deleted", user_reference(body.user), {"data": {"deleted": deleted}})
    return {"object": "homeport.erasure", "user": body.user, "deleted": deleted}
