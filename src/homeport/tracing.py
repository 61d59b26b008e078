"""Opt-in OpenTelemetry tracing (`tracing: true`): one span per request, with children for its
stages — admission (limits and budgets), the response cache, the engine's queue, prefill and
decode, an upstream call, database writes. Attributes name the model, the tokens, the key's id
(never its secret) and the request id. Spans leave through OTLP/HTTP (`otlp_endpoint`, or the
standard OTEL_EXPORTER_OTLP_* variables).

Off, every span here is OpenTelemetry's no-op: the global tracer provider is the API's default.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .backends.base import GenerationInfo
from .settings import Settings

__all__ = ["setup", "span", "engine_spans", "TracingMiddleware"]

log = logging.getLogger(__name__)
_TRACER = "homeport"


def setup(settings: Settings) -> bool:
    """Install the exporting tracer provider once per process, if tracing is on. True if it is on."""
    if not settings.tracing:
        return False
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):  # none installed yet (tests install theirs)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": settings.tracing_service_name}))
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint) if settings.otlp_endpoint else OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        log.info("tracing on: spans exported over OTLP/HTTP to %s", settings.otlp_endpoint or "the OTEL_* default")
    return True


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A child of the current span (a no-op when tracing is off)."""
    with trace.get_tracer(_TRACER).start_as_current_span(name, attributes=_clean(attributes)) as current:
        yield current


def engine_spans(info: GenerationInfo, tokens: int) -> None:
    """The engine's stages of one generation, from the times it reported, as children of the current span."""
    if not info.queued_ns or not trace.get_current_span().is_recording():
        return
    now = time.time_ns()
    tracer = trace.get_tracer(_TRACER)
    started = info.started_ns or now
    first = info.first_token_ns or now
    for name, begin, end, attrs in (
        ("engine.queue", info.queued_ns, started, {}),
        ("engine.prefill", started, first, {"homeport.cached_tokens": info.cached_tokens}),
        ("engine.decode", first, now, {"homeport.completion_tokens": tokens}),
    ):
        tracer.start_span(name, start_time=begin, attributes=attrs).end(end_time=max(end, begin))


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


class TracingMiddleware:
    """The request's span, `homeport.request`, with its route, status, model, key and tokens; the
    stages' spans are its children. (FastAPI opens a server span of its own around it, and spans for
    its dependencies and endpoint, when a tracer provider is installed.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with trace.get_tracer(_TRACER).start_as_current_span("homeport.request", kind=trace.SpanKind.SERVER) as current:
            try:
                await self.app(scope, receive, watched)
            finally:
                state = scope.get("state", {})
                route = getattr(scope.get("route"), "path", None)
                key = state.get("key")
                current.set_attributes(_clean({
                    "http.request.method": scope["method"], "http.route": route, "http.response.status_code": status,
                    "homeport.request_id": state.get("request_id"), "homeport.model": state.get("model") or None,
                    "homeport.key_id": key.id if key else None, "homeport.project_id": key.project_id if key else None,
                    "homeport.prompt_tokens": state.get("prompt_tokens"),
                    "homeport.completion_tokens": state.get("completion_tokens"),
                }))  # fmt: skip
                if status >= 500:
                    current.set_status(trace.StatusCode.ERROR)
