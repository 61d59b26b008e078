"""Sign-in and sign-out. Each is written to the audit log (`login.succeeded`, `login.failed`,
`logout.succeeded`, OpenAI's event types)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ...services.platform.audit import Actor, AuditLog
from ...services.platform.keys import redact
from .render import page
from .routing import DashboardRoute
from .session import LOGIN_COOKIE, SESSION_COOKIE, CsrfRefused, SignedIn, Signer, check_csrf

router = APIRouter(route_class=DashboardRoute)


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", path="/dashboard",
                        secure=False)  # fmt: skip  # served over plain HTTP on loopback; a TLS proxy adds Secure


def _next(target: str | None) -> str:
    """Only a dashboard path: never an open redirect."""
    return target if target and target.startswith("/dashboard") and not target.startswith("//") else "/dashboard"


@router.get("/dashboard/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _form(request, _next(request.query_params.get("next")))


def _form(request: Request, target: str, failed: str | None = None) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(16)
    signer: Signer = request.app.state.dashboard_signer
    response = page(request, None, "signin.html", login_csrf=signer.csrf(nonce), next=target, failed=failed,
                    status=401 if failed else 200)
    _cookie(response, LOGIN_COOKIE, nonce, 3600)
    return response


@router.post("/dashboard/sign-in")
async def sign_in(request: Request) -> Response:
    await check_csrf(request, request.cookies.get(LOGIN_COOKIE))
    form = await request.form()
    secret = str(form.get("key") or "").strip()
    audit: AuditLog = request.app.state.audit
    key = await request.app.state.keys.verify(secret) if secret else None
    problem = None
    if key is None:
        problem = "That API key is not valid."
    elif key.expired():
        problem = "That API key has expired."
    elif key.project is not None and key.project.archived_at is not None:
        problem = "That API key belongs to an archived project."
    if problem is not None or key is None:
        await audit.record("login.failed", Actor(user="dashboard"), redact(secret) if secret else "-",
                           {"error_message": problem})  # fmt: skip
        return _form(request, _next(str(form.get("next") or "")), problem)
    await audit.record("login.succeeded", Actor(key_id=key.id), key.id, None,
                       project=None if key.project is None else (key.project.id, key.project.name))  # fmt: skip
    signer: Signer = request.app.state.dashboard_signer
    response = RedirectResponse(_next(str(form.get("next") or "")), status_code=303)
    _cookie(response, SESSION_COOKIE, signer.issue(key.id), signer.max_age_s)
    response.delete_cookie(LOGIN_COOKIE, path="/dashboard")
    return response


@router.post("/dashboard/sign-out")
async def sign_out(request: Request, viewer: SignedIn) -> Response:
    await request.app.state.audit.record("logout.succeeded", Actor(key_id=viewer.key.id), viewer.key.id)
    response = RedirectResponse("/dashboard/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/dashboard")
    return response


__all__ = ["router", "CsrfRefused"]
