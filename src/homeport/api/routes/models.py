"""GET /v1/models, GET /v1/models/{model}."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...protocol.models import Model, ModelList
from ..deps import CurrentKey

router = APIRouter()


@router.get("/v1/models")
async def list_models(request: Request, key: CurrentKey) -> ModelList:
    await request.app.state.registry.sync(request.app.state.db)  # models added on any replica, now
    return request.app.state.registry.models(key.models, key.project.model_aliases if key.project else None)


@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, request: Request, key: CurrentKey) -> Model:
    await request.app.state.registry.sync(request.app.state.db)
    return request.app.state.registry.retrieve(model, key.models, key.project.model_aliases if key.project else None)
