"""GET /v1/organization/usage/{completions,embeddings,moderations} and /v1/organization/costs: OpenAI's shapes.

An admin key sees every project. Other keys see their own project's usage (Homeport allows
this; OpenAI asks for an admin key), and a key of no project sees the usage of keys of no project.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request

from ...services.platform.keys import ApiKey
from ...services.platform.usage import costs_report, usage_report
from ..deps import CurrentKey

router = APIRouter()


def _list(request: Request, name: str) -> list[str] | None:
    """A list parameter, sent repeated (`group_by=a&group_by=b`) or, as the SDK sends it, with brackets."""
    values = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    return values or None


def _visible_projects(key: ApiKey, asked: list[str] | None) -> list[str | None] | None:
    """Admin keys see the projects they ask for (all by default); others only their own."""
    if key.admin:
        return list(asked) if asked else None
    return [key.project_id]


async def _report_query(
    request: Request, key: CurrentKey, start_time: int, end_time: int | None = None, bucket_width: str = "1d",
    limit: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What the usage and cost reports share: the time window, grouping, and the projects and keys."""
    return {
        "start_time": start_time, "end_time": end_time, "bucket_width": bucket_width, "limit": limit,
        "group_by": _list(request, "group_by") or [],
        "project_ids": _visible_projects(key, _list(request, "project_ids")),
        "api_key_ids": _list(request, "api_key_ids"),
    }  # fmt: skip


ReportQuery = Annotated[dict[str, Any], Depends(_report_query)]


@router.get("/v1/organization/usage/{kind}")
async def get_usage(
    kind: Literal["completions", "embeddings", "moderations", "audio_speeches", "audio_transcriptions"],
    request: Request, query: ReportQuery,
) -> dict:
    return await usage_report(request.app.state.db, kind, models=_list(request, "models"), **query)


@router.get("/v1/organization/costs")
async def get_costs(request: Request, query: ReportQuery) -> dict:
    """Spend by day at the models' configured prices (input_price/output_price, USD per 1M tokens)."""
    return await costs_report(request.app.state.db, **query)
