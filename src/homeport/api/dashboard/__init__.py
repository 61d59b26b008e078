"""The web dashboard at /dashboard: usage, keys, projects and limits, models, logs, a playground,
files and vector stores, batches and responses. Server-rendered pages (Jinja2) with one small
script; charts are SVG drawn on the server. Nothing is fetched from elsewhere at run time.

Pages sign in with an API key (session.py). Errors render as a page, not as JSON, except for the
playground's call, which answers as the API does.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ...settings import Settings
from . import account_pages, auth_pages, data_pages, ops_pages, playground, usage_pages
from .render import templates
from .session import Signer, load_secret

__all__ = ["install"]


def install(app: FastAPI, settings: Settings) -> None:
    app.state.dashboard_signer = Signer(load_secret(settings), settings.dashboard_session_s)
    app.state.dashboard_templates = templates()
    for module in (auth_pages, usage_pages, account_pages, ops_pages, playground, data_pages):
        app.include_router(module.router, include_in_schema=False)  # cookie-signed pages, not the API
    app.mount("/dashboard/static", StaticFiles(directory=Path(__file__).parent / "static"), name="dashboard-static")
