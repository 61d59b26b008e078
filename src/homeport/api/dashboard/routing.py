"""The dashboard's routes render errors as pages (see DashboardRoute)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from ...errors import HomeportError
from ..errors import error_response
from .render import page
from .session import CsrfRefused, NotSignedIn

__all__ = ["DashboardRoute"]


class DashboardRoute(APIRoute):
    """Errors as pages: no session → the sign-in form; a refused CSRF token → 403; a typed error → its status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except NotSignedIn:
                if request.method == "GET":
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"/dashboard/sign-in?next={quote(target)}", status_code=303)
                return page(request, None, "error.html", status=401, message="Your session has ended: sign in again.")
            except CsrfRefused:
                message = "This form was refused: its CSRF token is missing or wrong. Reload the page."
                return page(request, None, "error.html", status=403, message=message)
            except HomeportError as exc:
                if request.url.path == "/dashboard/playground/chat":
                    return error_response(exc)  # the playground's script reads the API's error shape
                return page(request, None, "error.html", status=exc.status, message=exc.message)

        return handle
