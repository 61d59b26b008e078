"""The gateway step between parsing and running a request: the key's rate limits.

A route asks `admit` with the request's token estimate before any work; the answer carries
the x-ratelimit-* headers for the response, and `settle` corrects the token count after.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ..errors import (
    AuthenticationFailed,
    HomeportError,
    InsufficientQuota,
    ModelNotFound,
    PermissionDenied,
    RateLimited,
)
from ..protocol.common import Usage
from ..services.cache import cache_key
from ..services.keys import ApiKey
from ..services.limits import Reservation, ratelimit_headers
from ..services.usage import UsageEvent
from .sse import event_stream

__all__ = ["Admission", "Prices", "admit", "key_admitter", "respond"]

PROMPTS = logging.getLogger("homeport.prompts")


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens; a request's cost is kept in micro-dollars (integers)."""

    input: float = 0.0
    output: float = 0.0

    def split(self, prompt_tokens: int, output_tokens: int) -> tuple[int, int]:
        """(input, output) cost in micro-dollars, each rounded up."""
        return math.ceil(prompt_tokens * self.input), math.ceil(output_tokens * self.output)

    def micro_usd(self, prompt_tokens: int, output_tokens: int) -> int:
        return sum(self.split(prompt_tokens, output_tokens))


class Admission:
    def __init__(
        self, state: Any, key: ApiKey, reservation: Reservation | None, taken: tuple[int, int], prices: Prices
    ) -> None:
        self._limiter = state.limiter
        self._keys = state.keys
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


async def admit(state: Any, key: ApiKey, model: str, estimate: tuple[int, int], prices: Prices) -> Admission:
    """Take the estimate from the key's budgets and one request + its tokens from every rate limit
    of the key and its project that applies to `model` (a model id, not an alias).

    Raises InsufficientQuota (a budget is spent; not retried) or RateLimited (429 + Retry-After).
    """
    tokens, keys = sum(estimate), state.keys
    taken = (0, 0)
    if key.budgeted:
        want = (tokens, prices.micro_usd(*estimate))
        used = await keys.take_budget(key.id, *want)
        if used is None:
            state.alerts.refused(key)
            raise InsufficientQuota(
                "You exceeded your current quota: this key's budget cannot cover this request "
                f"(up to {tokens} tokens). Ask for a larger budget or a new key."
            )
        state.alerts.taken(key, used, want)
        taken = want
    scopes = [scope for limit in key.limits if limit.applies_to(model) for scope in limit.scopes()]
    if not scopes:
        return Admission(state, key, None, taken, prices)
    try:
        reservation = await state.limiter.reserve(scopes, tokens)
    except RateLimited:
        if key.budgeted:
            await keys.give_back_budget(key.id, *taken)
        raise
    return Admission(state, key, reservation, taken, prices)


def key_admitter(state: Any):  # type: ignore[no-untyped-def]
    """For work that runs after its request (assistant runs): admit by key id, as `admit` does.

    Returns an async function (key id, model, estimate) -> (Admission | None, Prices); None when
    the work has no key. A key revoked since raises AuthenticationFailed."""

    async def admit_key(key_id: str | None, model: str, estimate: tuple[int, int]) -> tuple[Admission | None, Prices]:
        config = state.registry.config(model)
        prices = Prices(config.input_price, config.output_price)
        if key_id is None:
            return None, prices
        key = await state.keys.load(key_id)
        if key is None or key.expired():
            raise AuthenticationFailed("The API key that started this run was revoked or has expired.")
        return await admit(state, key, config.id, estimate, prices), prices

    return admit_key


async def respond(request: Request, key: ApiKey, family: str, body: Any) -> Response:
    """Plan, admit, run, settle, meter: the shared path of the model endpoints.

    `family` (chat, completions, embeddings) names the service: the local one, or the upstream
    one for models served by other servers. A service has plan(body) -> plan (with `estimate`:
    prompt and output tokens), create(plan), and for streaming requests stream(plan) (which sets
    `plan.usage` when it completes).
    """
    upstream = request.app.state.upstream[family]
    service = upstream if upstream.handles(body.model) else getattr(request.app.state, family)
    meter = _Meter(request, key, body.model)
    try:
        if key.admin:
            raise PermissionDenied("Admin keys manage the platform; use a project's API key to call models.")
        if not request.app.state.registry.allowed(body.model, key.models):
            raise ModelNotFound(body.model)  # as OpenAI answers for a model the key can't use
        plan = service.plan(body)
        config = request.app.state.registry.config(body.model)
        prices = Prices(config.input_price, config.output_price)
        meter.resolved(config.id, prices)
        cache = request.app.state.cache
        cached = cache and cache_key(key.project_id, family, body, request.headers.get("x-homeport-cache"))
        if cached and (hit := await cache.get(cached)) is not None:
            return _cache_hit(hit, meter, config.id)
        admission = await admit(request.app.state, key, config.id, plan.estimate, prices)
    except HomeportError as exc:
        meter.refusal = exc.code
        meter.done(exc.status, None)
        raise
    try:
        if getattr(body, "stream", False):
            chunks = service.stream(plan)
            if key.project is not None and key.project.log_prompts:
                chunks = _logged_stream(chunks, request, key, body)
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
    if key.project is not None and key.project.log_prompts:
        _log_prompt(request, key, body, result.model_dump(exclude_none=True))
    payload = result.model_dump_json()
    headers = admission.headers
    if cached:
        await cache.set(cached, payload.encode())
        headers = headers | {"x-cache": "miss"}
    return Response(payload, media_type="application/json", headers=headers)


def _cache_hit(payload: bytes, meter: _Meter, model_id: str) -> Response:
    """The stored answer, byte for byte. Usage records its prompt as cached tokens, at no cost;
    hits take nothing from rate limits or budgets."""
    reported = json.loads(payload).get("usage") or {}
    prompt = int(reported.get("prompt_tokens") or 0)
    meter.resolved(model_id, Prices())
    meter.done(200, Usage.of(prompt, 0, cached_tokens=prompt))
    return Response(payload, media_type="application/json", headers={"x-cache": "hit"})


def _log_prompt(request: Request, key: ApiKey, body: Any, output: Any) -> None:
    """Only for projects that opted in (`homeport projects set NAME --log-prompts`)."""
    record = {"request": body.model_dump(exclude_none=True, by_alias=True), "response": output}
    extra = {"request_id": getattr(request.state, "request_id", None), "key_id": key.id, "project_id": key.project_id}
    PROMPTS.info(json.dumps(record, ensure_ascii=False), extra=extra)


async def _logged_stream(chunks: AsyncIterator[Any], request: Request, key: ApiKey, body: Any) -> AsyncIterator[Any]:
    """Pass a stream through, then log its request and the text it carried."""
    texts: dict[int, list[str]] = {}
    async for chunk in chunks:
        for choice in getattr(chunk, "choices", []):
            delta = getattr(choice, "delta", None)
            text = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
            if text:
                texts.setdefault(choice.index, []).append(text)
        yield chunk
    _log_prompt(request, key, body, {"stream": {str(i): "".join(parts) for i, parts in sorted(texts.items())}})


def _counts(usage: Any) -> tuple[int, int]:
    return usage.prompt_tokens, getattr(usage, "completion_tokens", 0)


class _Meter:
    """Metrics and the usage record of one model request."""

    def __init__(self, request: Request, key: ApiKey, model: str) -> None:
        request.state.model = model  # for the metrics middleware's labels
        self._request, self._key, self._model = request, key, model
        self._metrics = request.app.state.metrics
        self._start = time.perf_counter()
        self._prices = Prices()
        self.refusal: str | None = None

    def resolved(self, model_id: str, prices: Prices) -> None:
        """The request's model is known: record usage under its id (not an alias), at its prices."""
        self._model, self._prices = model_id, prices

    def first_token(self) -> None:
        self._metrics.ttft.labels(self._request.state.model).observe(time.perf_counter() - self._start)

    def done(self, status: int, usage: Any) -> None:
        prompt = usage.prompt_tokens if usage else 0
        completion = getattr(usage, "completion_tokens", 0) if usage else 0
        details = getattr(usage, "prompt_tokens_details", None)
        if status == 429:
            self._metrics.rate_limited.labels(self.refusal or "rate_limit").inc()
        label = self._request.state.model
        self._metrics.tokens.labels(label, "prompt").inc(prompt)
        self._metrics.tokens.labels(label, "completion").inc(completion)
        cost_in, cost_out = self._prices.split(prompt, completion)
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
                input_micro_usd=cost_in,
                output_micro_usd=cost_out,
            )
        )
