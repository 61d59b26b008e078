"""Templates (Jinja2, autoescaped) and the helpers every page uses."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .session import Viewer

__all__ = ["templates", "page", "back", "NAV"]

NAV = (
    ("overview", "Overview", "/dashboard"),
    ("usage", "Usage", "/dashboard/usage"),
    ("keys", "API keys", "/dashboard/keys"),
    ("projects", "Projects & limits", "/dashboard/projects"),
    ("models", "Models", "/dashboard/models"),
    ("logs", "Logs", "/dashboard/logs"),
    ("playground", "Playground", "/dashboard/playground"),
    ("data", "Files & vector stores", "/dashboard/data"),
    ("work", "Batches & responses", "/dashboard/work"),
)


def _date(ts: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "—" if not ts else time.strftime(fmt, time.gmtime(ts)) + " UTC"


def _day(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _usd(micro: int | None) -> str:
    return "—" if micro is None else f"${micro / 1e6:,.4f}"


def _number(n: float | None) -> str:
    return "—" if n is None else f"{n:,.0f}"


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(date=_date, day=_day, usd=_usd, number=_number)
    return env


def page(request: Request, viewer: Viewer | None, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    env: Environment = request.app.state.dashboard_templates
    html = env.get_template(template).render(
        nav=NAV, viewer=viewer, csrf=viewer.csrf if viewer else None, error=request.query_params.get("error"),
        notice=request.query_params.get("notice"), path=request.url.path, **context,
    )  # fmt: skip
    headers = {"cache-control": "no-store", "x-frame-options": "DENY", "referrer-policy": "same-origin",
               "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                          "script-src 'self'; frame-ancestors 'none'; form-action 'self'"}  # fmt: skip
    return HTMLResponse(html, status_code=status, headers=headers)


def back(path: str, **message: str) -> RedirectResponse:
    """After a form: to the page, with `notice` or `error` shown there (303: the browser GETs it)."""
    query = urlencode({k: v for k, v in message.items() if v})
    joined = f"{path}{'&' if '?' in path else '?'}{query}" if query else path
    return RedirectResponse(joined, status_code=303)
