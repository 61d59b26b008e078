"""Object ids in OpenAI's shapes: a prefix and 29 random base-62 characters."""

from __future__ import annotations

import secrets
import string

__all__ = ["new_id"]

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 29) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))
