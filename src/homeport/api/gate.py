"""The gateway step between parsing and running a request: the key's rate limits.

A route asks `admit` with the request's token estimate before any work; the answer carries
the x-ratelimit-* headers for the response, and `settle` corrects the token count after.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..errors import HomeportError, InsufficientQuota, ModelNotFound, RateLimited
from ..services.keys import ApiKey
from ..services.limits import Reservation, Scope, ratelimit_headers
from ..services.usage import UsageEvent
from .sse import event_stream

__all__ = ["Admission", "Prices", "admit", "respond"]


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens; a request's cost is kept in micro-dollars (integers)."""

    input: float = 0.0
    output: float = 0.0

    def micro_usd(self, prompt_tokens: int, output_tokens: int) -> int:
        return math.ceil(prompt_tokens * self.input + output_tokens * self.output)


class Admission:
    def __init__(
        self, request: Request, key: ApiKey, reservation: Reservation | None, taken: tuple[int, int], prices: Prices
    ) -> None:
        self._limiter = request.app.state.limiter
        self._keys = request.app.state.keys
        self._key = key
        self._reservation = reservation
        self._taken = taken  # (tokens, micro-USD) taken from the key's budgets up front
        self._prices = prices

    @property
    def headers(self) -> dict[str, str]:
        return ratelimit_headers(self._reservation) if self._reservation else {}

    async def settle(self, used: tuple[int, int] | None) -> None:
        """Real (prompt, output) tokens; None (a stream cut short) keeps the reservations."""
        if used is None:
            return
        if self._reservation is not None:
            await self._limiter.settle(self._reservation, sum(used))
        if self._key.budgeted:
            extra_tokens = self._taken[0] - sum(used)
            extra_cost = self._taken[1] - self._prices.micro_usd(*used)
            await self._keys.give_back_budget(self._key.id, extra_tokens, extra_cost)


async def admit(request: Request, key: ApiKey, estimate: tuple[int, int], prices: Prices) -> Admission:
    """Take the estimate from the key's budgets and one request + its tokens from its rate limits.

    Raises InsufficientQuota (a budget is spent; not retried) or RateLimited (429 + Retry-After).
    """
    tokens, keys = sum(estimate), request.app.state.keys
    taken = (0, 0)
    if key.budgeted:
        want = (tokens, prices.micro_usd(*estimate))
        used = await keys.take_budget(key.id, *want)
        if used is None:
            request.app.state.alerts.refused(key)
            raise InsufficientQuota(
                "You exceeded your current quota: this key's budget cannot cover this request "
                f"(up to {tokens} tokens). Ask for a larger budget or a new key."
            )
        request.app.state.alerts.taken(key, used, want)
        taken = want
    scopes = []
    if key.rpm is not None or key.tpm is not None:
        scopes.append(Scope(f"key:{key.id}", key.rpm, key.tpm))
    if key.project_id is not None and (key.project_rpm is not None or key.project_tpm is not None):
        scopes.append(Scope(f"project:{key.project_id}", key.project_rpm, key.project_tpm))
    if not scopes:
        return Admission(request, key, None, taken, prices)
    try:
        reservation = await request.app.state.limiter.reserve(scopes, tokens)
    except RateLimited:
        if key.budgeted:
            await keys.give_back_budget(key.id, *taken)
        raise
    return Admission(request, key, reservation, taken, prices)


async def respond(request: Request, key: ApiKey, service: Any, body: Any) -> Response:
    """Plan, admit, run, settle, meter: the shared path of the model endpoints.

    `service` has plan(body) -> plan (with `estimate`: prompt and output tokens), create(plan), and for
    streaming requests stream(plan) (which sets `plan.usage` when it completes).
    """
    meter = _Meter(request, key, body.model)
    try:
        if not request.app.state.registry.allowed(body.model, key.models):
            raise ModelNotFound(body.model)  # as OpenAI answers for a model the key can't use
        plan = service.plan(body)
        config = request.app.state.registry.config(body.model)
        admission = await admit(request, key, plan.estimate, Prices(config.input_price, config.output_price))
    except HomeportError as exc:
        meter.refusal = exc.code
        meter.done(exc.status, None)
        raise
    try:
        if getattr(body, "stream", False):
            chunks = service.stream(plan)
            first = await anext(chunks)  # errors before the first chunk are still HTTP errors
            meter.first_token()

            async def settle() -> None:
                usage = plan.usage
                await admission.settle(_counts(usage) if usage else None)
                meter.done(200 if usage else 499, usage)  # 499: the client left mid-stream

            return event_stream(first, chunks, headers=admission.headers, on_close=settle)
        result = await service.create(plan)
    except BaseException as exc:
        await admission.settle((0, 0))  # failed requests use no tokens
        meter.done(exc.status if isinstance(exc, HomeportError) else 500, None)
        raise
    await admission.settle(_counts(result.usage))
    meter.done(200, result.usage)
    return Response(result.model_dump_json(), media_type="application/json", headers=admission.headers)


def _counts(usage: Any) -> tuple[int, int]:
    return usage.prompt_tokens, getattr(usage, "completion_tokens", 0)


class _Meter:
    """Metrics and the usage record of one model request."""

    def __init__(self, request: Request, key: ApiKey, model: str) -> None:
        request.state.model = model  # for the metrics middleware's labels
        self._request, self._key, self._model = request, key, model
        self._metrics = request.app.state.metrics
        self._start = time.perf_counter()
        self.refusal: str | None = None

    def first_token(self) -> None:
        self._metrics.ttft.labels(self._model).observe(time.perf_counter() - self._start)

    def done(self, status: int, usage: Any) -> None:
        prompt = usage.prompt_tokens if usage else 0
        completion = getattr(usage, "completion_tokens", 0) if usage else 0
        details = getattr(usage, "prompt_tokens_details", None)
        if status == 429:
            self._metrics.rate_limited.labels(self.refusal or "rate_limit").inc()
        self._metrics.tokens.labels(self._model, "prompt").inc(prompt)
        self._metrics.tokens.labels(self._model, "completion").inc(completion)
        path = self._request.url.path
        self._request.app.state.usage.record(
            UsageEvent(
                kind="embeddings" if path.endswith("/embeddings") else "completions",
                project_id=self._key.project_id,
                key_id=self._key.id,
                model=self._model,
                endpoint=path,
                status=status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_tokens=details.cached_tokens if details else 0,
                latency_ms=round(1000 * (time.perf_counter() - self._start)),
            )
        )
