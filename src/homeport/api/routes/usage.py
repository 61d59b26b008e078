"""GET /v1/organization/usage/{completions,embeddings}: OpenAI's usage shapes.

A key that belongs to a project sees that project's usage only; a key without a project
(the development key, keys made without --project) sees all of it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from ...services.usage import usage_report
from ..deps import CurrentKey

router = APIRouter()

Ids = Annotated[list[str] | None, Query()]


@router.get("/v1/organization/usage/{kind}")
async def get_usage(
    kind: Literal["completions", "embeddings"],
    request: Request,
    key: CurrentKey,
    start_time: int,
    end_time: int | None = None,
    bucket_width: str = "1d",
    group_by: Ids = None,
    project_ids: Ids = None,
    models: Ids = None,
    api_key_ids: Ids = None,
    limit: int | None = None,
) -> dict:
    if key.project_id is not None:
        project_ids = [key.project_id]
    return await usage_report(
        request.app.state.db, kind, start_time=start_time, end_time=end_time, bucket_width=bucket_width,
        group_by=group_by or [], project_ids=project_ids, models=models, api_key_ids=api_key_ids, limit=limit,
    )  # fmt: skip
