"""Request bodies: JSON parsed straight into protocol types, errors named like OpenAI names them."""

from __future__ import annotations

import json
import re
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ..errors import InvalidRequest, invalid_body

__all__ = ["parse_body"]

M = TypeVar("M", bound=BaseModel)

# A \uD800-\uDBFF escape not followed by a \uDC00-\uDFFF one, or the second kind alone: JSON allows
# them, Python decodes them to lone surrogates, and no UTF-8 encoder takes those. (A filter: an escaped
# backslash before "uD800" matches too; _encodable decides.)
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_UNPARSEABLE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)


async def parse_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except RecursionError:
        raise InvalidRequest("The JSON body of your request is nested too deeply.") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(_UNPARSEABLE) from None
    if _LONE_SURROGATE.search(raw) and not _encodable(data):
        raise InvalidRequest(f"{_UNPARSEABLE} A \\u escape encodes half of a UTF-16 surrogate pair alone.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_body(exc, data) from None


def _encodable(data: object) -> bool:
    """Whether every string in `data` (keys too) is valid Unicode: no lone surrogates."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
