"""Tracing, opt-in, with an in-memory exporter: a span per request with its route, status, model,
key id and tokens, children for admission, the cache and the engine's stages, and no secret."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from homeport.api.app import create_app
from homeport.settings import ModelConfig, Settings

SECRET = "sk-hp-tracing-test-secret-0123"
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    found = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(found))
    trace.set_tracer_provider(provider)  # the process's provider: tracing.setup leaves it in place
    return found


@pytest.fixture
async def client(tmp_path: Path, exporter: InMemorySpanExporter) -> AsyncIterator[openai.AsyncOpenAI]:
    models = [ModelConfig(id="fake-chat", version="v1", kind="chat", backend="fake"),
              ModelConfig(id="fake-embed", version="v1", kind="embedding", backend="fake")]  # fmt: skip
    settings = Settings(data_dir=tmp_path, api_key=SECRET, tracing=True, vector_store_model="fake-embed", models=models)
    app = create_app(settings, progress=lambda *a: None)
    async with app.router.lifespan_context(app):
        await app.state.registry.ready.wait()
        transport = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://homeport")
        async with openai.AsyncOpenAI(base_url="http://homeport/v1", api_key=SECRET, max_retries=0,
                                      http_client=transport) as c:  # fmt: skip
            exporter.clear()
            yield c


def _root(spans, route):  # type: ignore[no-untyped-def]
    """Homeport's request span for this route (FastAPI adds spans of its own around and beneath it)."""
    (found,) = [s for s in spans if s.name == "homeport.request" and s.attributes.get("http.route") == route]
    return found


def _children(spans, parent) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Every span below `parent`, by name."""
    below, ids = {}, {parent.context.span_id}
    for span in sorted(spans, key=lambda s: s.start_time):
        if span.parent is not None and span.parent.span_id in ids:
            below[span.name] = span
            ids.add(span.context.span_id)
    changed = True
    while changed:  # spans that ended before their parents are listed in end order: go round again
        changed = False
        for span in spans:
            if span.parent is not None and span.parent.span_id in ids and span.context.span_id not in ids:
                below[span.name], changed = span, True
                ids.add(span.context.span_id)
    return below


async def test_a_request_span_with_its_stages(client, exporter) -> None:
    out = await client.chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5, temperature=0)
    spans = exporter.get_finished_spans()
    root = _root(spans, "/v1/chat/completions")
    attrs = dict(root.attributes)
    assert attrs["http.response.status_code"] == 200 and attrs["homeport.model"] == "fake-chat"
    assert attrs["homeport.request_id"] == out.headers["x-request-id"]
    assert attrs["homeport.key_id"].startswith("key_") and attrs["homeport.completion_tokens"] == 5
    children = _children(spans, root)
    assert {"cache.lookup", "admission", "engine.queue", "engine.prefill", "engine.decode"} <= set(children)
    decode = children["engine.decode"]
    assert decode.attributes["homeport.completion_tokens"] == 5
    assert root.start_time <= children["engine.queue"].start_time <= decode.end_time <= root.end_time
    for span in spans:  # the key's secret is never an attribute
        assert all(SECRET not in str(v) for v in span.attributes.values())


async def test_a_stream_is_one_span_to_its_last_chunk(client, exporter) -> None:
    stream = await client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=8, stream=True)  # fmt: skip
    async for _ in stream:
        pass
    spans = exporter.get_finished_spans()
    root = _root(spans, "/v1/chat/completions")
    assert "engine.decode" in _children(spans, root)


async def test_errors_and_other_routes_are_traced(client, exporter) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    await client.embeddings.create(model="fake-embed", input="hello")
    spans = exporter.get_finished_spans()
    assert _root(spans, "/v1/chat/completions").attributes["http.response.status_code"] == 404
    assert _root(spans, "/v1/embeddings").attributes["homeport.model"] == "fake-embed"
