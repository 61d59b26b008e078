"""Models (what is served, under which names, how busy each engine is, upstream health) and the
logs of recent requests, with prompts and outputs for the projects that opted in."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...services.dashboard import figures
from .render import page
from .routing import DashboardRoute
from .session import SignedIn

router = APIRouter(route_class=DashboardRoute)


def _engine(stats: dict[str, float] | None) -> dict[str, Any] | None:
    if not stats:
        return None
    busy = stats.get("busy_seconds", 0.0)
    return {"slots_busy": int(stats.get("slots_busy", 0)), "queue_depth": int(stats.get("queue_depth", 0)),
            "generated_tokens": int(stats.get("generated_tokens", 0)),
            "tokens_per_s": stats.get("generated_tokens", 0) / busy if busy > 0 else None}  # fmt: skip


@router.get("/dashboard/models")
async def models_page(request: Request, viewer: SignedIn) -> Response:
    registry = request.app.state.registry
    loaded, stats = set(registry.loaded()), registry.engine_stats()
    pools = request.app.state.upstream_pools
    allow = None if viewer.admin else viewer.key.models
    rows = []
    for model_id in registry.ids():
        if not registry.allowed(model_id, allow):
            continue
        cfg = registry.config(model_id)
        upstreams = [{"name": name, "outstanding": n, "up": up} for _, name, n, up in pools[model_id].states()] \
            if model_id in pools else []  # fmt: skip
        openai = sorted(n for n, target in registry.openai_names.items() if target == model_id)
        rows.append({"id": model_id, "kind": cfg.kind, "backend": cfg.backend, "pinned": cfg.versioned_id,
                     "aliases": [n for n in registry.names(model_id) if n not in (model_id, cfg.versioned_id, *openai)],
                     "openai": openai,
                     "loaded": model_id in loaded or cfg.backend == "upstream", "engine": _engine(stats.get(model_id)),
                     "upstreams": upstreams})  # fmt: skip
    return page(request, viewer, "models.html", models=rows, load_error=request.app.state.load_error)


@router.get("/dashboard/logs")
async def logs_page(request: Request, viewer: SignedIn) -> Response:
    q = request.query_params
    project = viewer.project_id if viewer.project_id is not None else (q.get("project") or None)
    before = int(q["before"]) if q.get("before", "").isdigit() else None
    rows = await figures.recent(request.app.state.db, project, limit=100, before=before)
    ids = [r.request_id for r in rows if r.request_id]
    prompts = await request.app.state.prompt_logs.of_requests(ids, project or None) if ids else {}
    if viewer.admin:  # every key's name (an admin's playground requests carry the admin key's id)
        keys = {k.id: k.name for k in await request.app.state.keys.list_keys()}
    elif project:
        keys = {k.id: k.name for k in await request.app.state.keys.list_keys(project_id=project)}
    else:
        keys = {viewer.key.id: viewer.key.name}
    projects = {p.id: p.name for p in await request.app.state.projects.list()}
    return page(request, viewer, "logs.html", rows=rows, prompts=prompts, key_names=keys, project_names=projects,
                project=project, older=rows[-1].id if len(rows) == 100 else None)  # fmt: skip
