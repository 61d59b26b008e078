"""The gateway step between parsing and running a request: the key's rate limits.

A route asks `admit` with the request's token estimate before any work; the answer carries
the x-ratelimit-* headers for the response, and `settle` corrects the token count after.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..errors import HomeportError, InsufficientQuota, ModelNotFound, RateLimited
from ..services.keys import ApiKey
from ..services.limits import Reservation, Scope, ratelimit_headers
from ..services.usage import UsageEvent
from .sse import event_stream

__all__ = ["Admission", "admit", "respond"]


class Admission:
    def __init__(self, request: Request, key: ApiKey, reservation: Reservation | None, budgeted: int) -> None:
        self._limiter = request.app.state.limiter
        self._keys = request.app.state.keys
        self._key = key
        self._reservation = reservation
        self._budgeted = budgeted  # tokens taken from the key's budget up front

    @property
    def headers(self) -> dict[str, str]:
        return ratelimit_headers(self._reservation) if self._reservation else {}

    async def settle(self, actual_tokens: int | None) -> None:
        """Real tokens used; None (a stream cut short) keeps the reservation as it was."""
        if actual_tokens is None:
            return
        if self._reservation is not None:
            await self._limiter.settle(self._reservation, actual_tokens)
        if self._budgeted:
            await self._keys.give_back_budget(self._key.id, self._budgeted - actual_tokens)


async def admit(request: Request, key: ApiKey, tokens: int) -> Admission:
    """Take `tokens` from the key's budget and one request + `tokens` from its rate limits.

    Raises InsufficientQuota (budget spent; not retried) or RateLimited (429 + Retry-After).
    """
    budgeted = 0
    if key.budget_tokens is not None:
        used = await request.app.state.keys.take_budget(key.id, tokens)
        if used is not None:
            request.app.state.alerts.taken(key, used, tokens)
        else:
            request.app.state.alerts.refused(key)
            raise InsufficientQuota(
                f"You exceeded your token budget ({key.budget_tokens} tokens) for this key; "
                f"this request needs up to {tokens}."
            )
        budgeted = tokens
    scopes = []
    if key.rpm is not None or key.tpm is not None:
        scopes.append(Scope(f"key:{key.id}", key.rpm, key.tpm))
    if key.project_id is not None and (key.project_rpm is not None or key.project_tpm is not None):
        scopes.append(Scope(f"project:{key.project_id}", key.project_rpm, key.project_tpm))
    if not scopes:
        return Admission(request, key, None, budgeted)
    try:
        reservation = await request.app.state.limiter.reserve(scopes, tokens)
    except RateLimited:
        if budgeted:
            await request.app.state.keys.give_back_budget(key.id, budgeted)
        raise
    return Admission(request, key, reservation, budgeted)


async def respond(request: Request, key: ApiKey, service: Any, body: Any) -> Response:
    """Plan, admit, run, settle, meter: the shared path of the model endpoints.

    `service` has plan(body) -> plan (with `token_estimate`), create(plan), and for
    streaming requests stream(plan) (which sets `plan.usage` when it completes).
    """
    meter = _Meter(request, key, body.model)
    try:
        if not request.app.state.registry.allowed(body.model, key.models):
            raise ModelNotFound(body.model)  # as OpenAI answers for a model the key can't use
        plan = service.plan(body)
        admission = await admit(request, key, plan.token_estimate)
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
                await admission.settle(usage.total_tokens if usage else None)
                meter.done(200 if usage else 499, usage)  # 499: the client left mid-stream

            return event_stream(first, chunks, headers=admission.headers, on_close=settle)
        result = await service.create(plan)
    except BaseException as exc:
        await admission.settle(0)  # failed requests use no tokens
        meter.done(exc.status if isinstance(exc, HomeportError) else 500, None)
        raise
    await admission.settle(result.usage.total_tokens)
    meter.done(200, result.usage)
    return Response(result.model_dump_json(), media_type="application/json", headers=admission.headers)


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
