"""The one path of every model call: plan → cache → admit → run → settle → meter → log.

Each model-calling family (api/families.py) gets a POST route here. The family's local service,
or the upstream relay for models served by other servers, plans the request (validation and the
token estimate); a cached answer is returned before any limit is touched; otherwise the key's
budgets and rate limits admit it (services/platform/admission.py), the service runs it, the
admission is settled with the real tokens, and the call is metered (metrics and usage record)
and, for projects that opted in, logged.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .. import tracing
from ..backends.base import arrivals
from ..errors import HomeportError, ModelNotFound, PermissionDenied
from ..protocol.common import Usage
from ..services.inference.relay import UpstreamService
from ..services.moderations.guardrails import Screen, streamed_text
from ..services.platform.admission import Prices
from ..services.platform.cache import cache_key
from ..services.platform.keys import ApiKey
from ..services.platform.prompt_logs import PromptLogs
from ..services.platform.usage import UsageEvent
from .body import parse_body
from .deps import CurrentKey
from .drain import ClientLeft, Drain
from .families import Family, ModelCall, ModelService, model_calls
from .sse import event_stream

__all__ = ["FamilyServices", "answering", "may_call", "respond", "router"]

GUARDED = ("chat", "completions", "responses")
"""The families a project's moderation guardrail screens (services/moderations/guardrails.py)."""



@dataclass(frozen=True)
class FamilyServices:
    """A model-calling family's local service and its upstream relay, if it has one."""

    local: ModelService
    relay: UpstreamService | None = None

    def serving(self, model: str) -> ModelService:
        return self.relay if self.relay is not None and self.relay.handles(model) else self.local

    async def start(self) -> None:
        """Start what the service runs in the background (its scheduled jobs), if anything."""
        start = getattr(self.local, "start", None)
        if start is not None:
            await start()


def router() -> APIRouter:
    """POST routes for every model-calling family."""
    routes = APIRouter()
    for family, call in model_calls():
        routes.add_api_route(call.path, _endpoint(family, call), methods=["POST"], response_model=None,
                             name=f"create_{family.name}")  # fmt: skip
    return routes


def _endpoint(family: Family, call: ModelCall):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request, key: CurrentKey) -> Response:
        return await respond(request, key, family, call, await parse_body(request, call.request))

    return endpoint


async def respond(request: Request, key: ApiKey, family: Family, call: ModelCall, body: Any) -> Response:
    state = request.app.state
    drain: Drain = state.drain
    meter = _Meter(request, key, body.model, call)
    try:
        may_call(request, key, body.model)
        body = body.model_copy(update={"model": answering(request, key, body.model)})  # answers name the model
        service = state.model_services[call.path].serving(body.model)
        plan = await service.plan(body, key.project_id, key.id)
        screen = _screen(request, key, family)
        if screen is not None:
            meter.screen = screen
            await screen.check_request(body)  # before the cache and the limits: a blocked request costs nothing
        model_id = state.registry.config(body.model).id
        prices = state.admitter.prices(model_id)
        meter.resolved(model_id, prices)
        cache = state.cache
        asked = request.headers.get("x-homeport-cache")
        cached = cache and call.cacheable(body) and cache_key(key.project_id, family.name, body, asked)
        if cached:
            with tracing.span("cache.lookup", **{"homeport.cache.hit": False}) as looked:
                hit = await cache.get(cached)
                looked.set_attribute("homeport.cache.hit", hit is not None)
            if hit is not None:
                return _cache_hit(hit, meter, model_id)
        with tracing.span("admission", **{"homeport.model": model_id, "homeport.key_id": key.id}):
            admission = await state.admitter.admit(key, model_id, plan.estimate, prices)
    except HomeportError as exc:
        meter.refusal = exc.code
        meter.done(exc.status, None)
        raise
    arrivals.handed_over()  # what follows, up to the engine's queue, runs without a pause
    try:
        if getattr(body, "stream", False):
            chunks = drain.stream(service.stream(plan))  # type: ignore[attr-defined]  # streaming families only
            if screen is not None:
                chunks = screen.check_stream(chunks)
            if key.project is not None and key.project.log_prompts:
                chunks = _logged_stream(chunks, request, key, body)
            first = await anext(chunks)  # errors before the first chunk are still HTTP errors
            meter.first_token()

            async def settle() -> None:
                usage = plan.usage
                await admission.settle(_counts(usage) if usage else None)
                meter.done(200 if usage else 503 if drain.stopped else 499, usage)  # 499: the client left

            return event_stream(first, chunks, headers=admission.headers, on_close=settle, style=call.sse)
        result = await drain.watch(request, service.create(plan))
        if screen is not None:
            await screen.check_result(result)
    except ClientLeft:
        await admission.settle((0, 0))  # what was generated was never delivered
        meter.done(499, None)
        return Response(status_code=499)  # nobody reads it; for the access log
    except BaseException as exc:
        await admission.settle((0, 0))  # failed requests use no tokens
        meter.done(exc.status if isinstance(exc, HomeportError) else 500, None)
        raise
    await admission.settle(_counts(result.usage))
    meter.done(200, result.usage)
    if key.project is not None and key.project.log_prompts:
        await _log_prompt(request, key, body, result.model_dump(exclude_none=True))
    payload = result.model_dump_json()
    headers = admission.headers
    if cached:
        await cache.set(cached, payload.encode())
        headers = headers | {"x-cache": "miss"}
    return Response(payload, media_type="application/json", headers=headers)


def answering(request: Request, key: ApiKey, name: str) -> str:
    """The id of the model that answers to `name` for this key: its project's aliases first."""
    return request.app.state.registry.resolve(name, key.project.model_aliases if key.project else None)


def may_call(request: Request, key: ApiKey, model: str) -> None:
    """Whether this key may call this model: not an admin key, and the model (by any of its names, or
    its project's alias for it) in its allow-list."""
    if key.admin:
        raise PermissionDenied("Admin keys manage the platform; use a project's API key to call models.")
    registry = request.app.state.registry
    if key.models is not None and not registry.allowed(model, key.models):
        try:
            allowed = registry.allowed(answering(request, key, model), key.models)
        except ModelNotFound:
            allowed = False
        if not allowed:
            raise ModelNotFound(model)  # as OpenAI answers for a model the key can't use


def _screen(request: Request, key: ApiKey, family: Family) -> Screen | None:
    if family.name not in GUARDED:
        return None
    return request.app.state.guardrails.screen(key.project, key.id, getattr(request.state, "request_id", None))


def _cache_hit(payload: bytes, meter: _Meter, model_id: str) -> Response:
    """The stored answer, byte for byte. Usage records its prompt as cached tokens, at no cost;
    hits take nothing from rate limits or budgets."""
    reported = json.loads(payload).get("usage") or {}
    prompt = int(reported.get("prompt_tokens") or reported.get("input_tokens") or 0)  # chat's or a response's
    meter.resolved(model_id, Prices())
    meter.done(200, Usage.of(prompt, 0, cached_tokens=prompt))
    return Response(payload, media_type="application/json", headers={"x-cache": "hit"})


async def _log_prompt(request: Request, key: ApiKey, body: Any, output: Any) -> None:
    """Only for projects that opted in (`homeport projects set NAME --log-prompts`); stored, not
    printed, so retention, erasure and encryption at rest reach it."""
    logs: PromptLogs = request.app.state.prompt_logs
    with tracing.span("db.prompt_log"):
        await logs.record(key.project_id, key.id, getattr(request.state, "request_id", None),
                          body.model_dump(mode="json", exclude_none=True, by_alias=True), output)  # fmt: skip


async def _logged_stream(chunks: AsyncIterator[Any], request: Request, key: ApiKey, body: Any) -> AsyncIterator[Any]:
    """Pass a stream through, then log its request and the text it carried (by choice, or by output
    item for the Responses API's events)."""
    texts: dict[int, list[str]] = {}
    async for chunk in chunks:
        for index, text in streamed_text(chunk):
            texts.setdefault(index, []).append(text)
        yield chunk
    await _log_prompt(request, key, body, {"stream": {str(i): "".join(parts) for i, parts in sorted(texts.items())}})


def _counts(usage: Any) -> tuple[int, int]:
    return usage.prompt_tokens, getattr(usage, "completion_tokens", 0)


class _Meter:
    """Metrics and the usage record of one model request."""

    def __init__(self, request: Request, key: ApiKey, model: str, call: ModelCall) -> None:
        request.state.model = model  # for the metrics middleware's labels
        self._request, self._key, self._model, self._call = request, key, model, call
        self._metrics = request.app.state.metrics
        self._start = time.perf_counter()
        self._prices = Prices()
        self.refusal: str | None = None
        self.screen: Screen | None = None

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
        self._request.state.prompt_tokens, self._request.state.completion_tokens = prompt, completion  # for traces
        self._metrics.tokens.labels(label, "prompt").inc(prompt)
        self._metrics.tokens.labels(label, "completion").inc(completion)
        cost_in, cost_out = self._prices.split(prompt, completion)
        self._request.app.state.usage.record(
            UsageEvent(
                kind=self._call.usage,
                project_id=self._key.project_id,
                key_id=self._key.id,
                model=self._model,
                endpoint=self._request.url.path,
                status=status,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_tokens=details.cached_tokens if details else 0,
                latency_ms=round(1000 * (time.perf_counter() - self._start)),
                input_micro_usd=cost_in,
                output_micro_usd=cost_out,
                flagged=int(self.screen is not None and self.screen.flagged),
                request_id=getattr(self._request.state, "request_id", None),
            )
        )
