"""Request dependencies: the authenticated key and the services on app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..errors import AuthenticationFailed, PermissionDenied
from ..services.platform.keys import ApiKey, redact
from .families import endpoint_family

__all__ = ["authenticate", "require_admin", "AdminKey", "CurrentKey"]


async def authenticate(request: Request) -> ApiKey:
    # The dashboard's playground calls routes in process as the signed-in key (api/dashboard/playground.py);
    # only code in this process can put a key in the ASGI scope's state.
    injected = request.scope.get("state", {}).get("dashboard_key")
    key = injected if isinstance(injected, ApiKey) else await _bearer(request)
    if key.expired():
        raise AuthenticationFailed(f"The API key {key.redacted} has expired.")
    if key.project is not None and key.project.archived_at is not None:
        raise AuthenticationFailed(f"The API key {key.redacted} belongs to an archived project.")
    request.state.key = key  # for the access log
    family = endpoint_family(request.url.path)
    if key.endpoints is not None and family is not None and family not in key.endpoints:
        raise PermissionDenied(f"This API key may call only {', '.join(key.endpoints)} endpoints, not {family}.")
    if key.admin and family not in (None, "models", "usage"):
        raise PermissionDenied("Admin keys manage the platform; use a project's API key for its models and data.")
    if key.read_only and request.method not in ("GET", "HEAD"):
        raise PermissionDenied("This API key is read-only: it may list models and read usage, not make requests.")
    return key


async def _bearer(request: Request) -> ApiKey:
    header = request.headers.get("authorization", "")
    if not header and request.headers.get("x-api-key"):  # Anthropic's SDK sends its key so
        header = f"Bearer {request.headers['x-api-key']}"
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationFailed(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). Create one with `homeport keys create`."
        )
    key = await request.app.state.keys.verify(secret.strip())
    if key is None:
        raise AuthenticationFailed(f"Incorrect API key provided: {redact(secret.strip())}.")
    return key


CurrentKey = Annotated[ApiKey, Depends(authenticate)]


async def require_admin(key: CurrentKey) -> ApiKey:
    if not key.admin:
        raise PermissionDenied("This endpoint needs an admin key (create one with `homeport keys create --admin`).")
    return key


AdminKey = Annotated[ApiKey, Depends(require_admin)]
