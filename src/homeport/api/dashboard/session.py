"""Dashboard sign-in: a signed, HttpOnly, SameSite=Strict cookie naming the API key that signed in
(never its secret), and a CSRF token on every form.

The cookie is `payload.signature`, the payload base64url JSON {key id, nonce, expiry} and the
signature HMAC-SHA256 under the dashboard secret. Each request loads the key again, so a revoked
or expired key, or an archived project, ends its sessions at once. The CSRF token is an HMAC of
the session's nonce: a page of another origin can neither read it nor (SameSite=Strict) send the
cookie, and the check refuses a form without it. Before sign-in, the nonce is a random cookie of
its own (`homeport_login`), so the sign-in form is protected the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from ...services.platform.keys import ApiKey
from ...settings import Settings

__all__ = ["Signer", "Viewer", "SignedIn", "SESSION_COOKIE", "LOGIN_COOKIE", "load_secret", "NotSignedIn",
           "CsrfRefused", "check_csrf"]  # fmt: skip

SESSION_COOKIE = "homeport_session"
LOGIN_COOKIE = "homeport_login"


class NotSignedIn(Exception):
    """No valid session: pages redirect to the sign-in form."""


class CsrfRefused(Exception):
    """A form or call without the session's CSRF token: 403."""


def load_secret(settings: Settings) -> bytes:
    """The signing secret: the configured one, or a random one kept in the data dir (0600)."""
    if settings.dashboard_secret is not None:
        return settings.dashboard_secret.get_secret_value().encode()
    path = Path(settings.data_dir) / "dashboard.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class Session:
    key_id: str
    nonce: str
    expires_at: int


class Signer:
    def __init__(self, secret: bytes, max_age_s: int) -> None:
        self._secret, self.max_age_s = secret, max_age_s

    def _mac(self, data: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._secret, data, hashlib.sha256).digest()).decode().rstrip("=")

    def issue(self, key_id: str) -> str:
        body = {"k": key_id, "n": secrets.token_urlsafe(16), "e": int(time.time()) + self.max_age_s}
        payload = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
        return f"{payload}.{self._mac(payload.encode())}"

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or cookie.count(".") != 1:
            return None
        payload, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(str(body["k"]), str(body["n"]), int(body["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires_at > time.time() else None

    def csrf(self, nonce: str) -> str:
        return self._mac(b"csrf:" + nonce.encode())

    def csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        return bool(nonce and token) and hmac.compare_digest(self.csrf(nonce or ""), token or "")


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the signed-in key. Admin keys see every project; a project key its own."""

    key: ApiKey
    csrf: str

    @property
    def admin(self) -> bool:
        return self.key.admin

    @property
    def project_id(self) -> str | None:
        """The project every page is limited to (None: all, for admin keys)."""
        return None if self.key.admin else self.key.project_id or ""

    def sees(self, project_id: str | None) -> bool:
        return self.admin or project_id == self.key.project_id


async def viewer(request: Request) -> Viewer:
    signer: Signer = request.app.state.dashboard_signer
    session = signer.read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise NotSignedIn
    key = await request.app.state.keys.load(session.key_id)
    if key is None or key.expired() or (key.project is not None and key.project.archived_at is not None):
        raise NotSignedIn
    request.state.key = key  # for the access log
    found = Viewer(key, signer.csrf(session.nonce))
    if request.method not in ("GET", "HEAD"):
        await check_csrf(request, session.nonce)
    return found


async def check_csrf(request: Request, nonce: str | None) -> None:
    """The token from the form field `csrf` or the header `x-csrf-token` must match the nonce's."""
    token = request.headers.get("x-csrf-token")
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        token = (await request.form()).get("csrf")  # type: ignore[assignment]
    if not request.app.state.dashboard_signer.csrf_ok(nonce, token if isinstance(token, str) else None):
        raise CsrfRefused


SignedIn = Annotated[Viewer, Depends(viewer)]
