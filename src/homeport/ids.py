"""Object ids in OpenAI's shapes: a prefix and random base-62 characters.

`sortable_id` starts the random part with the creation time (microseconds, base 62, fixed
width), so objects created within one second still list in creation order.
"""

from __future__ import annotations

import secrets
import string
import time

__all__ = ["new_id", "sortable_id"]

_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase  # ASCII order: sorts as text


def new_id(prefix: str, length: int = 29) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def sortable_id(prefix: str, length: int = 24) -> str:
    stamp, digits = time.time_ns() // 1000, []
    for _ in range(10):  # 62**10 microseconds: about 26 million years
        stamp, digit = divmod(stamp, 62)
        digits.append(_ALPHABET[digit])
    return prefix + "".join(reversed(digits)) + "".join(secrets.choice(_ALPHABET) for _ in range(length - 10))
