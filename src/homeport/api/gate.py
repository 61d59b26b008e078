"""The gateway step between parsing and running a request: the key's rate limits.

A route asks `admit` with the request's token estimate before any work; the answer carries
the x-ratelimit-* headers for the response, and `settle` corrects the token count after.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..services.keys import ApiKey
from ..services.limits import Reservation, ratelimit_headers
from .sse import event_stream

__all__ = ["Admission", "admit", "respond"]


class Admission:
    def __init__(self, request: Request, reservation: Reservation | None) -> None:
        self._limiter = request.app.state.limiter
        self._reservation = reservation

    @property
    def headers(self) -> dict[str, str]:
        return ratelimit_headers(self._reservation) if self._reservation else {}

    async def settle(self, actual_tokens: int | None) -> None:
        """Real tokens used; None (a stream cut short) keeps the reservation as it was."""
        if self._reservation is not None and actual_tokens is not None:
            await self._limiter.settle(self._reservation, actual_tokens)


async def admit(request: Request, key: ApiKey, tokens: int) -> Admission:
    """Reserve one request and `tokens` under the key's limits; raises RateLimited (429)."""
    if key.rpm is None and key.tpm is None:
        return Admission(request, None)
    reservation = await request.app.state.limiter.reserve(f"key:{key.id}", key.rpm, key.tpm, tokens)
    return Admission(request, reservation)


async def respond(request: Request, key: ApiKey, service: Any, body: Any) -> Response:
    """Plan, admit, run, settle: the shared path of the model endpoints.

    `service` has plan(body) -> plan (with `token_estimate`), create(plan), and for
    streaming requests stream(plan) (which sets `plan.usage` when it completes).
    """
    plan = service.plan(body)
    admission = await admit(request, key, plan.token_estimate)
    try:
        if getattr(body, "stream", False):
            chunks = service.stream(plan)
            first = await anext(chunks)  # errors before the first chunk are still HTTP errors

            async def settle() -> None:
                await admission.settle(plan.usage.total_tokens if plan.usage else None)

            return event_stream(first, chunks, headers=admission.headers, on_close=settle)
        result = await service.create(plan)
    except BaseException:
        await admission.settle(0)  # failed requests use no tokens
        raise
    await admission.settle(result.usage.total_tokens)
    return Response(result.model_dump_json(), media_type="application/json", headers=admission.headers)
