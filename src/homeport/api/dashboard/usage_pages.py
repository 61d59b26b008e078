"""Overview and usage: tokens, requests and cost per day from the hourly rollups, error rate and
latency from the request stats, top keys, budgets near their limit; a CSV export."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from ...services.dashboard import figures
from ...services.dashboard.figures import DAY, Day, Scope
from ...services.platform.keys import ApiKey
from .charts import Series, stacked_bars
from .render import page
from .routing import DashboardRoute
from .session import SignedIn, Viewer

router = APIRouter(route_class=DashboardRoute)

RANGES = (1, 7, 14, 30, 90)
NEAR = 0.5
"""A budget is shown as near its limit from this share used."""


def _scope(request: Request, viewer: Viewer) -> Scope:
    """The page's range and filters from the query; a project key's scope is always its project."""
    q = request.query_params
    days = _scope_days(request)
    start, end = _date(q.get("start")), _date(q.get("end"))
    filters = _filters(request, viewer)
    if start is not None and end is not None and start <= end and (end - start) // DAY < 366:
        return Scope(start, end + DAY, **filters)
    return Scope.last_days(days, **filters)


def _filters(request: Request, viewer: Viewer) -> dict[str, Any]:
    q = request.query_params
    project = viewer.project_id if viewer.project_id is not None else (q.get("project") or None)
    return {"project_id": project, "key_id": q.get("key") or None, "model": q.get("model") or None}


def _scope_days(request: Request) -> int:
    q = request.query_params
    return int(q["days"]) if q.get("days", "").isdigit() and int(q["days"]) in RANGES else 14


def _date(text: str | None) -> int | None:
    try:
        return int(time.mktime(time.strptime(text or "", "%Y-%m-%d"))) - time.timezone
    except ValueError:
        return None


def _charts(days: list[Day], groups: list[str], what: str) -> dict[str, Markup]:
    starts = [d.start for d in days]

    def stacked(field: str, scale: float = 1.0) -> list[Series]:
        return [Series(g, [d.by_group.get(g, {}).get(field, 0) * scale for d in days]) for g in groups]

    return {
        "tokens": Markup(stacked_bars(f"Tokens per day by {what}", starts, stacked("tokens"))),
        "requests": Markup(stacked_bars(f"Requests per day by {what}", starts, stacked("requests"))),
        "cost": Markup(stacked_bars(f"Cost per day by {what} (USD)", starts, stacked("micro_usd", 1e-6), "$")),
    }


async def _names(request: Request, viewer: Viewer) -> tuple[dict[str, str], dict[str, str], list[ApiKey]]:
    """Key and project names for labels, and the keys the viewer may see."""
    if viewer.project_id == "":  # a key of no project sees only itself
        keys = [viewer.key]
    else:
        keys = await request.app.state.keys.list_keys(project_id=viewer.project_id)
    projects = {p.id: p.name for p in await request.app.state.projects.list()}
    return {k.id: k.name for k in keys}, projects, keys


def _near_limit(keys: list[ApiKey]) -> list[dict[str, Any]]:
    near = []
    for k in keys:
        if k.revoked_at is not None:
            continue
        for kind, used, limit in (("tokens", k.budget_used, k.budget_tokens), ("USD", k.spent_micro_usd,
                                                                                k.budget_micro_usd)):  # fmt: skip
            if limit and used >= NEAR * limit:
                scale = 1e-6 if kind == "USD" else 1
                near.append({"key": k, "kind": kind, "used": used * scale, "limit": limit * scale,
                             "share": used / limit})  # fmt: skip
    return sorted(near, key=lambda n: -n["share"])


async def _usage_context(request: Request, viewer: Viewer, scope: Scope) -> dict[str, Any]:
    db = request.app.state.db
    stack = request.query_params.get("stack", "model")
    stack = stack if stack in ("model", "project_id", "key_id") and (viewer.admin or stack != "project_id") else "model"
    days, groups = await figures.daily(db, scope, stack)
    key_names, project_names, keys = await _names(request, viewer)
    labels = {"project_id": project_names, "key_id": key_names}.get(stack, {})
    for day in days:
        day.by_group = {labels.get(g, g): v for g, v in day.by_group.items()}
    groups = [labels.get(g, g) for g in groups]
    latency = await figures.latency(db, scope)
    totals = latency[-1]
    return {
        "scope": scope, "days": days, "charts": _charts(days, groups, stack.removesuffix("_id")), "latency": latency,
        "totals": totals, "key_names": key_names, "project_names": project_names, "keys": keys,
        "models": request.app.state.registry.ids(), "stack": stack, "ranges": RANGES,
        "custom": "start" in request.query_params and scope != Scope.last_days(_scope_days(request),
                                                                               **_filters(request, viewer)),
        "sum": {f: sum(getattr(d, f) for d in days) for f in ("requests", "input_tokens", "output_tokens",
                                                               "micro_usd")},
    }  # fmt: skip


@router.get("/dashboard")
async def overview(request: Request, viewer: SignedIn) -> Response:
    scope = _scope(request, viewer)
    context = await _usage_context(request, viewer, scope)
    top = await figures.top_keys(request.app.state.db, scope)
    return page(request, viewer, "overview.html", top=top, near=_near_limit(context["keys"]), **context)


@router.get("/dashboard/usage")
async def usage(request: Request, viewer: SignedIn) -> Response:
    scope = _scope(request, viewer)
    context = await _usage_context(request, viewer, scope)
    query = request.url.query
    return page(request, viewer, "usage.html", csv_url=f"/dashboard/usage.csv?{query}", **context)


@router.get("/dashboard/usage.csv")
async def usage_csv(request: Request, viewer: SignedIn) -> Response:
    scope = _scope(request, viewer)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(figures.CSV_COLUMNS)
    writer.writerows(await figures.csv_rows(request.app.state.db, scope))
    name = f"homeport-usage-{time.strftime('%Y%m%d', time.gmtime(scope.start))}-" \
           f"{time.strftime('%Y%m%d', time.gmtime(scope.end - DAY))}.csv"  # fmt: skip
    headers = {"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)
