"""Loading and unloading models without a restart, with an admin key (Homeport's own routes:
OpenAI has none). `homeport models load|unload|status` calls these."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...errors import NotFound
from ...services.inference.registry import ModelRegistry
from ..deps import AdminKey
from .admin import audit

router = APIRouter()


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
    if not any(s["id"] == model_id for s in _registry(request).states()):
        _registry(request).refresh()
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
