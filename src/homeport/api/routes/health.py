"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    registry = request.app.state.registry
    ready = registry.ready.is_set() and not request.app.state.load_error
    body = {"status": "ready" if ready else "loading", "models": registry.loaded()}
    if request.app.state.load_error:
        body["error"] = request.app.state.load_error
    return JSONResponse(body, status_code=200 if ready else 503)
