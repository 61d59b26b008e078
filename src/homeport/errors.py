"""Homeport's error hierarchy. Services raise these; `api/errors.py` maps them to HTTP once.

HomeportError                      500 server_error
├── InvalidRequest                 400 invalid_request_error
│   ├── ContextLengthExceeded      400 code=context_length_exceeded
│   ├── UnsupportedParameter       400 code=unsupported_parameter
│   └── ContentPolicyViolation     400 code=content_policy_violation: a project's moderation guardrail
├── AuthenticationFailed           401 invalid_request_error, code=invalid_api_key
├── PermissionDenied               403
├── NotFound                       404
│   └── ModelNotFound              404 code=model_not_found
├── Conflict                       409
│   └── InsufficientMemory         409 code=insufficient_memory: a model would not fit the memory budget
├── RequestTooLarge                413
├── RateLimited                    429 (Retry-After)
├── EngineOverloaded               503 (Retry-After)
├── StorageUnavailable             503 code=storage_unavailable (Retry-After): the database is unreachable
├── StorageFull                    507 code=insufficient_storage: the data directory's disk is full
└── EngineError                    500
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

__all__ = [
    "invalid_body",
    "HomeportError",
    "InvalidRequest",
    "ContextLengthExceeded",
    "UnsupportedParameter",
    "ContentPolicyViolation",
    "AuthenticationFailed",
    "PermissionDenied",
    "NotFound",
    "ModelNotFound",
    "Conflict",
    "InsufficientMemory",
    "RequestTooLarge",
    "RateLimited",
    "InsufficientQuota",
    "EngineOverloaded",
    "EngineError",
    "StorageUnavailable",
    "StorageFull",
]


class HomeportError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.headers: dict[str, str] = {}  # extra response headers (e.g. x-ratelimit-*)


class InvalidRequest(HomeportError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ContentPolicyViolation(InvalidRequest):
    code = "content_policy_violation"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"

    def __init__(self, param: str, detail: str = "") -> None:
        message = f"Unsupported parameter: '{param}' is not supported by Homeport's local models."
        super().__init__(f"{message} {detail}".strip(), param=param)


class AuthenticationFailed(HomeportError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(HomeportError):
    status = 403
    type = "permission_error"


class NotFound(HomeportError):
    status = 404
    type = "invalid_request_error"


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, model: str, param: str | None = "model", message: str | None = None) -> None:
        super().__init__(message or f"The model `{model}` does not exist or you do not have access to it.", param=param)


class Conflict(HomeportError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class InsufficientMemory(Conflict):
    code = "insufficient_memory"


class RequestTooLarge(HomeportError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(HomeportError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class InsufficientQuota(RateLimited):
    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"x-should-retry": "false"}  # the SDK must not retry an exhausted budget


class EngineOverloaded(HomeportError):
    status = 503
    type = "server_error"
    code = "engine_overloaded"


class StorageUnavailable(HomeportError):
    status = 503
    code = "storage_unavailable"


class StorageFull(HomeportError):
    status = 507
    code = "insufficient_storage"


class EngineError(HomeportError):
    status = 500
    type = "server_error"


def invalid_body(exc: ValidationError, data: Any) -> InvalidRequest:
    """A request body's validation error as OpenAI names it: the param is the path in the body."""
    # Prefer the error that reaches deepest into the body: for unions, pydantic reports one
    # error per member and the deepest is the one about what the client actually sent. At the
    # same depth, an error about the value (an empty list, too many items) beats a member's type
    # mismatch ("should be a valid string" for a list).
    errors = exc.errors(include_url=False)
    best = max(errors, key=lambda e: (len(_param_parts(e["loc"], data, e["type"])), not e["type"].endswith("_type")))
    kind = best["type"]
    parts = _param_parts(best["loc"], data, kind)
    if kind in ("union_tag_invalid", "union_tag_not_found"):  # name the tag field, e.g. `tools.[0].type`
        parts.append(str(best.get("ctx", {}).get("discriminator", "type")).strip("'"))
    param = ".".join(parts) if parts else None
    if kind == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {parts[-1] if parts else param}", param=param)
    if kind == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    return InvalidRequest(f"Invalid value for '{param}': {best['msg']}.", param=param)


def _param_parts(loc: tuple[Any, ...], data: Any, kind: str) -> list[str]:
    """Follow pydantic's error location through the actual body; union members (`str`,
    `list[str]`…) are skipped, as they are no keys of the body."""
    parts: list[str] = []
    node = data

    def missing_here(i: int) -> bool:
        return kind == "missing" and i == len(loc) - 1

    for i, step in enumerate(loc):
        if isinstance(step, int) and isinstance(node, list) and 0 <= step < len(node):
            parts.append(f"[{step}]")
            node = node[step]
        elif isinstance(step, str) and isinstance(node, dict) and (step in node or missing_here(i)):
            parts.append(step)  # a key the client sent, or the missing field itself
            node = node.get(step)
    return parts
