"""The one place where errors become HTTP responses in OpenAI's shape."""

from __future__ import annotations

import errno
import json
import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import HomeportError, InvalidRequest, StorageFull, StorageUnavailable
from ..protocol.errors import ErrorDetail, ErrorResponse

__all__ = ["install_error_handlers", "error_body", "error_response", "anthropic_body"]

log = logging.getLogger(__name__)

_STATUS_TYPES = {401: "invalid_request_error", 404: "invalid_request_error", 405: "invalid_request_error"}


_LONGEST = 2000  # an error echoes what it names; a 10 MB model name is not sent back


def error_body(exc: HomeportError) -> dict:
    message, param = exc.message, exc.param
    if len(message) > _LONGEST:
        message = message[:_LONGEST] + "… (cut)"
    if param is not None and len(param) > _LONGEST:
        param = param[:_LONGEST] + "…"
    detail = ErrorDetail(message=message, type=exc.type, param=param, code=exc.code)
    return ErrorResponse(error=detail).model_dump()


def error_response(exc: HomeportError) -> JSONResponse:
    headers = dict(exc.headers)
    if exc.retry_after is not None:
        headers["retry-after"] = str(math.ceil(exc.retry_after))
    return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)


async def _homeport_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HomeportError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}"
    else:
        message = str(exc.detail)
    err = HomeportError(message)
    err.status, err.type = exc.status_code, _STATUS_TYPES.get(exc.status_code, "invalid_request_error")
    return error_response(err)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # Only path/query parameters reach FastAPI's validation; bodies are parsed in api/body.py.
    return error_response(InvalidRequest(str(exc)))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(HomeportError("The server had an error while processing your request."))


async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    """The database or the disk failed under a request: a full disk is 507 and a lost database
    503 (each rolled back, so nothing is half-written); anything else is a 500 as usual."""
    if _disk_full(exc):
        log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
        return error_response(StorageFull("The server's storage is full; nothing was changed. Retry later."))
    if _database_unreachable(exc):
        log.warning("database unreachable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(StorageUnavailable("The database is unavailable; retry shortly.", retry_after=1))
    return await _unexpected(request, exc)


def _database_unreachable(exc: BaseException) -> bool:
    """A lost or refused database connection (a restart, a failover), not a bad query."""
    if isinstance(exc, DBAPIError):
        state = str(getattr(exc.orig, "sqlstate", None) or "")
        unreachable = exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
        return unreachable or state.startswith(("08", "57P"))  # connection exception; shutting down
    return isinstance(exc, ConnectionError)


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC from a file write, or SQLite's own report of it."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, OperationalError) and "database or disk is full" in str(exc)


_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    503: "overloaded_error", 529: "overloaded_error"}  # fmt: skip


def anthropic_body(status: int, message: str) -> dict:
    """Anthropic's error shape, for its Messages API (`/v1/messages`)."""
    return {"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(status, "api_error"), "message": message}}


def _shaped(handler):  # type: ignore[no-untyped-def]
    """The handler's answer, in Anthropic's shape on Anthropic's paths (same status and headers)."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        response = await handler(request, exc)
        if not request.url.path.startswith("/v1/messages"):
            return response
        message = json.loads(bytes(response.body))["error"]["message"]
        headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        return JSONResponse(anthropic_body(response.status_code, message), response.status_code, headers=headers)

    return handle


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HomeportError, _shaped(_homeport_error))
    app.add_exception_handler(StarletteHTTPException, _shaped(_http_error))
    app.add_exception_handler(RequestValidationError, _shaped(_validation_error))
    app.add_exception_handler(DBAPIError, _shaped(_storage_error))
    app.add_exception_handler(OSError, _shaped(_storage_error))  # ConnectionError, ENOSPC
    app.add_exception_handler(Exception, _shaped(_unexpected))
