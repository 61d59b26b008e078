"""The gateway step between parsing and running a request: the key's rate limits.

A route asks `admit` with the request's token estimate before any work; the answer carries
the x-ratelimit-* headers for the response, and `settle` corrects the token count after.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..errors import RateLimited
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
    """Plan, admit, run, settle, meter: the shared path of the model endpoints.

    `service` has plan(body) -> plan (with `token_estimate`), create(plan), and for
    streaming requests stream(plan) (which sets `plan.usage` when it completes).
    """
    metrics = request.app.state.metrics
    request.state.model = body.model
    start = time.perf_counter()
    plan = service.plan(body)
    try:
        admission = await admit(request, key, plan.token_estimate)
    except RateLimited:
        metrics.rate_limited.labels("rate_limit").inc()
        raise
    try:
        if getattr(body, "stream", False):
            chunks = service.stream(plan)
            first = await anext(chunks)  # errors before the first chunk are still HTTP errors
            metrics.ttft.labels(body.model).observe(time.perf_counter() - start)

            async def settle() -> None:
                usage = plan.usage
                await admission.settle(usage.total_tokens if usage else None)
                _count_tokens(metrics, body.model, usage)

            return event_stream(first, chunks, headers=admission.headers, on_close=settle)
        result = await service.create(plan)
    except BaseException:
        await admission.settle(0)  # failed requests use no tokens
        raise
    await admission.settle(result.usage.total_tokens)
    _count_tokens(metrics, body.model, result.usage)
    return Response(result.model_dump_json(), media_type="application/json", headers=admission.headers)


def _count_tokens(metrics: Any, model: str, usage: Any) -> None:
    if usage is not None:
        metrics.tokens.labels(model, "prompt").inc(usage.prompt_tokens)
        metrics.tokens.labels(model, "completion").inc(getattr(usage, "completion_tokens", 0))
