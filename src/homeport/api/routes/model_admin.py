"""Adding, removing, loading and unloading models without a restart, with an admin key
(Homeport's own routes: OpenAI has none). `homeport models load|unload|status` calls these;
`homeport models add|remove` writes the same table directly. An added model is served by every
replica (each reads the table on /v1/models and every `model_sync_s`)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ...errors import InvalidRequest, NotFound
from ...services.inference.model_files import add_user_model, model_from_source, remove_user_model
from ...services.inference.registry import ModelRegistry
from ..deps import AdminKey
from .admin import audit

router = APIRouter()


class AddModel(BaseModel):
    source: str = Field(
        description="A GGUF path on the server's machine, an installed package that ships one, or repo_id[:file.gguf]."
    )
    id: str | None = Field(None, description="The id clients will ask for (default: from the file's name).")
    template: Literal["chatml", "gemma"] | None = Field(None, description="For a GGUF that carries no chat template.")


def _registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


@router.get("/v1/homeport/models")
async def model_states(request: Request, key: AdminKey) -> dict[str, Any]:
    """Every configured model: loaded or not, its weights' size, seconds since a request used it."""
    settings = request.app.state.settings
    return {"object": "list", "data": _registry(request).states(), "memory_budget_mb": settings.models_memory_mb,
            "keep_alive_s": settings.model_keep_alive_s}  # fmt: skip


def _state(request: Request, model_id: str) -> dict[str, Any]:
    found = next((s for s in _registry(request).states() if s["id"] == model_id), None)
    if found is None:
        raise NotFound(f"No configured model '{model_id}'.", param="model")
    return found


@router.post("/v1/homeport/models/{model_id}/load")
async def load_model(model_id: str, request: Request, key: AdminKey) -> dict[str, Any]:
    """Load a configured model now, or one `homeport models add` added since start (409
    insufficient_memory if it would not fit the budget)."""
    await _registry(request).sync(request.app.state.db)
    _state(request, model_id)
    await _registry(request).load_model(model_id)
    await audit(request, key, "model.loaded", model_id)  # Homeport's event type
    return _state(request, model_id)


@router.post("/v1/homeport/models/{model_id}/unload")
async def unload_model(model_id: str, request: Request, key: AdminKey) -> dict[str, Any]:
    """Free a model's engine. The next request for it loads it again (503 + Retry-After meanwhile)."""
    _state(request, model_id)
    if await _registry(request).unload_model(model_id):
        await audit(request, key, "model.unloaded", model_id)
    return _state(request, model_id)


@router.post("/v1/homeport/models", status_code=201)
async def add_model(body: AddModel, request: Request, key: AdminKey) -> dict[str, Any]:
    """Serve a GGUF chat model on every replica (loaded on first use, or with .../load)."""
    registry = _registry(request)
    settings = request.app.state.settings
    config, path = await asyncio.to_thread(model_from_source, body.source, settings.data_dir, body.id, body.template)
    taken = {n for n in (config.id, config.versioned_id) if registry.knows(n)}
    await add_user_model(request.app.state.db, config, taken)
    await registry.sync(request.app.state.db)
    await audit(request, key, "model.added", config.id)
    return _state(request, config.id) | {"path": str(path)}


@router.delete("/v1/homeport/models/{model_id}")
async def remove_model(model_id: str, request: Request, key: AdminKey) -> dict[str, Any]:
    """Stop serving a model users added, on every replica (its engine is closed)."""
    registry = _registry(request)
    if not await remove_user_model(request.app.state.db, model_id):
        if registry.knows(model_id):
            raise InvalidRequest(f"`{model_id}` is configured in the settings, not added: remove it there.",
                                 param="model")  # fmt: skip
        raise NotFound(f"No added model '{model_id}'.", param="model")
    await registry.sync(request.app.state.db)
    await audit(request, key, "model.removed", model_id)
    return {"id": model_id, "object": "model", "deleted": True}
