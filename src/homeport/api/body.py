"""Request bodies: JSON parsed straight into protocol types, errors named like OpenAI names them."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequest

__all__ = ["parse_body"]

M = TypeVar("M", bound=BaseModel)


async def parse_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _to_invalid_request(exc, data) from None


def _to_invalid_request(exc: ValidationError, data: dict[str, Any]) -> InvalidRequest:
    # Prefer the error that reaches deepest into the body: for unions, pydantic reports one
    # error per member and the deepest is the one about what the client actually sent.
    errors = exc.errors(include_url=False)
    best = max(errors, key=lambda e: len(_param_parts(e["loc"], data)))
    parts = _param_parts(best["loc"], data)
    kind = best["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):  # name the tag field, e.g. `tools.[0].type`
        parts.append(str(best.get("ctx", {}).get("discriminator", "type")).strip("'"))
    param = ".".join(parts) if parts else None
    if kind == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {parts[-1] if parts else param}", param=param)
    if kind == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    return InvalidRequest(f"Invalid value for '{param}': {best['msg']}.", param=param)


def _param_parts(loc: tuple[Any, ...], data: Any) -> list[str]:
    """Follow pydantic's error location through the actual body; union tags are skipped."""
    parts: list[str] = []
    node = data
    for i, step in enumerate(loc):
        if isinstance(step, int) and isinstance(node, list) and 0 <= step < len(node):
            parts.append(f"[{step}]")
            node = node[step]
        elif isinstance(step, str) and isinstance(node, dict) and (step in node or i == len(loc) - 1):
            parts.append(step)  # a key the client sent, or the missing field itself
            node = node.get(step)
    return parts
