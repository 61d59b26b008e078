"""`create_app(settings)`: builds every collaborator explicitly and wires the HTTP stack."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from .. import tracing
from ..backends.upstream import UpstreamPool
from ..metrics import Metrics
from ..services.assistants.assistants import AssistantService
from ..services.assistants.events import RunEvents
from ..services.assistants.objects import Documents
from ..services.assistants.runner import Runner
from ..services.assistants.runs import RunService
from ..services.assistants.state import RunRecorder
from ..services.audio.speech import SpeechService
from ..services.audio.transcriptions import TranscriptionService
from ..services.batches.service import BatchService, BatchTerms, Endpoint
from ..services.compliance.archive import ProjectArchive
from ..services.compliance.data import ProjectData
from ..services.inference.chat import ChatService
from ..services.inference.registry import LoadProgress, ModelRegistry
from ..services.inference.relay import UpstreamService
from ..services.kit import Kit
from ..services.moderations.guardrails import Guardrails
from ..services.moderations.service import ModerationService
from ..services.platform.accounts import Accounts, prepare
from ..services.platform.admission import Admitter
from ..services.platform.alerts import BudgetAlerts
from ..services.platform.audit import AuditLog
from ..services.platform.cache import MemoryCache, RedisCache, ResponseCache
from ..services.platform.limits import MemoryRateLimiter, RedisRateLimiter
from ..services.platform.prompt_logs import PromptLogs
from ..services.platform.usage import UsageRecorder
from ..services.retrieval.files import FileStore
from ..services.retrieval.indexes import Indexes
from ..services.retrieval.ingest import Ingestion
from ..services.retrieval.stores import VectorStoreService
from ..settings import Settings
from ..storage.blobs import BlobStore, EncryptedBlobStore, LocalBlobStore
from ..storage.db import Database
from ..storage.jobs import Jobs, open_queue
from ..storage.sealing import Sealer
from . import dashboard, model_call
from .drain import Drain
from .errors import install_error_handlers
from .families import model_calls
from .middleware import ArrivalMiddleware, BodyLimitMiddleware, MetricsMiddleware, RequestIdMiddleware
from .routes import admin, health, model_admin, models, ops
from .routes import assistants as assistant_routes
from .routes import audio as audio_routes
from .routes import batches as batch_routes
from .routes import chat as chat_routes
from .routes import files as file_routes
from .routes import messages as message_routes
from .routes import responses as response_routes
from .routes import usage as usage_routes
from .routes import vector_stores as vs_routes

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _log_progress(model_id: str, state: str, seconds: float) -> None:
    log.info("model %s: %s (%.1fs)", model_id, state, seconds)


def create_app(settings: Settings, progress: LoadProgress = _log_progress) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        api_key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        await prepare(accounts, api_key, first_key=False)
        usage.start()
        await indexes.start()
        await jobs.start()
        await ingestion.start()
        for services in app.state.model_services.values():
            await services.start()
        await runs.start(registry.ready)
        await project_data.start()
        await registry.sync(db)  # the models users added, before loading
        loading = asyncio.create_task(_load(app, registry, progress))
        watchers = [asyncio.create_task(pool.watch()) for pool in pools.values()]
        watchers.append(asyncio.create_task(_follow_user_models(registry, db, settings.model_sync_s)))
        if settings.model_keep_alive_s is not None:
            watchers.append(asyncio.create_task(_unload_idle(registry, settings.model_keep_alive_s)))
        try:
            yield
        finally:
            for task in (loading, *watchers):
                task.cancel()
            await asyncio.gather(loading, *watchers, return_exceptions=True)
            await jobs.close()
            await runs.close()
            await registry.close()
            await app.state.limiter.close()
            await usage.close()
            await alerts.close()
            await upstream_client.aclose()
            if cache is not None:
                await cache.close()
            await db.close()

    db = Database(settings.resolved_database_url)
    accounts = Accounts.open(db, settings.key_cache_s)
    keys = accounts.keys
    registry = ModelRegistry(settings)
    app = FastAPI(title="Homeport", version="0.1.0", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.db = db
    app.state.keys = keys
    app.state.projects = accounts.projects
    app.state.limit_rows = accounts.limits
    app.state.audit = AuditLog(db)
    app.state.registry = registry
    app.state.load_error = None
    app.state.drain = Drain(settings.shutdown_grace_s)
    app.state.metrics = metrics = Metrics()
    app.state.usage = usage = UsageRecorder(db, retention_days=settings.usage_retention_days, touch=keys.touch)
    app.state.alerts = alerts = BudgetAlerts(settings.alert_webhook_url)
    app.state.limiter = (
        RedisRateLimiter(settings.redis_url, settings.redis_prefix, settings.rate_limits_when_redis_down)
        if settings.redis_url
        else MemoryRateLimiter()
    )
    cache: ResponseCache | None = None
    if settings.cache_enabled:
        cache = (
            RedisCache(settings.redis_url, settings.redis_prefix, settings.cache_ttl_s)
            if settings.redis_url
            else MemoryCache(settings.cache_ttl_s, settings.cache_max_entries)
        )
    app.state.cache = cache
    at_rest = base64.b64decode(settings.encryption_key.get_secret_value()) if settings.encryption_key else None
    local = LocalBlobStore(settings.data_dir / "files")
    blobs: BlobStore = local if at_rest is None else EncryptedBlobStore(local, at_rest)
    sealer = Sealer(at_rest)
    app.state.prompt_logs = PromptLogs(db, sealer)
    app.state.files = files = FileStore(db, blobs, settings.max_file_bytes)
    jobs = Jobs(open_queue(db.url, db.engine), concurrency=settings.run_workers, heartbeat_s=settings.run_heartbeat_s)
    ingestion = Ingestion(db, files, registry, jobs)
    indexes = Indexes(db, settings.data_dir / "vector_indexes", settings.vector_index)
    app.state.vector_stores = vector_stores = VectorStoreService(
        db, files, registry, indexes, ingestion, settings.vector_store_model
    )
    upstream_client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))
    pools = {m.id: UpstreamPool(m, upstream_client) for m in settings.models if m.backend == "upstream"}
    app.state.upstream_pools = pools
    metrics.watch_upstreams(lambda: [row for pool in pools.values() for row in pool.states()])
    metrics.watch_process(lambda: int(getattr(db.engine.pool, "checkedout", lambda: 0)()))
    app.state.admitter = admitter = Admitter(registry, keys, accounts.budgets, app.state.limiter, alerts)
    kit = Kit(registry, db, vector_stores, jobs, admitter, usage, pools)
    app.state.model_services = services = {
        call.path: model_call.FamilyServices(
            call.service(kit),
            UpstreamService(call.path.removeprefix("/v1"), registry, pools) if call.relay else None,
        )
        for family, call in model_calls()
    }
    endpoints = {call.path: Endpoint(call.request, services[call.path].local, call.usage, services[call.path].relay)
                 for _, call in model_calls() if call.path != "/v1/responses/compact"}  # fmt: skip
    moderations = services["/v1/moderations"].local
    assert isinstance(moderations, ModerationService)
    app.state.transcriptions = TranscriptionService(registry)
    app.state.speech = SpeechService(registry)
    app.state.guardrails = Guardrails(moderations, app.state.audit, metrics.moderation_flags, settings.guardrail_model)
    app.state.project_data = project_data = ProjectData(db, files, vector_stores, jobs)
    app.state.project_archive = ProjectArchive(db, files, vector_stores, sealer)
    terms = BatchTerms(settings.batch_discount, settings.batch_window_s, settings.batch_upstream_concurrency,
                       local_concurrency=settings.engine.slots + 4)
    app.state.batches = BatchService(db, files, jobs, admitter, usage, endpoints, terms)
    app.state.assistants = assistants = AssistantService(Documents(db), registry, vector_stores)
    chat = services["/v1/chat/completions"].local
    assert isinstance(chat, ChatService)
    recorder = RunRecorder(assistants.docs, RunEvents(settings.redis_url, f"{settings.redis_prefix}:"))
    runner = Runner(recorder, chat, vector_stores, usage, jobs, admitter)
    app.state.runs = runs = RunService(assistants, recorder, runner, jobs, expires_s=settings.run_expires_s)
    install_error_handlers(app)
    app.include_router(model_call.router())
    routers = (health, models, ops, chat_routes, usage_routes, admin, file_routes, vs_routes, assistant_routes,
               response_routes, batch_routes, audio_routes, message_routes, model_admin)  # fmt: skip
    for module in routers:
        app.include_router(module.router)
    if settings.dashboard:
        dashboard.install(app, settings)
    # Added innermost first: the request id wraps everything, including 413 answers.
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_request_bytes, uploads_max_bytes=settings.max_file_bytes + (1 << 20)
    )  # + room for multipart framing
    app.add_middleware(MetricsMiddleware, metrics=metrics, access_log=settings.access_log)
    app.add_middleware(ArrivalMiddleware, paths={call.path for _, call in model_calls()})
    app.add_middleware(RequestIdMiddleware)
    if tracing.setup(settings):
        app.add_middleware(tracing.TracingMiddleware)  # outermost: the request's span covers everything
    return app


async def _follow_user_models(registry: ModelRegistry, db: Database, every_s: float) -> None:
    """Pick up models added or removed on other replicas (or by the CLI)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            added, removed = await registry.sync(db)
            for model_id in added:
                log.info("model %s added", model_id)
            for model_id in removed:
                log.info("model %s removed", model_id)
        except Exception:  # the next round tries again
            log.exception("reading the added models failed")


async def _unload_idle(registry: ModelRegistry, keep_alive_s: float) -> None:
    """Unload the models no request has used within `keep_alive_s` (checked a few times per period)."""
    while True:
        await asyncio.sleep(min(30.0, max(keep_alive_s / 4, 0.5)))
        try:
            for model_id in await registry.unload_idle(keep_alive_s):
                log.info("model %s unloaded: idle for %.0f s", model_id, keep_alive_s)
        except Exception:  # the next round tries again
            log.exception("unloading idle models failed")


async def _load(app: FastAPI, registry: ModelRegistry, progress: LoadProgress) -> None:
    try:
        await registry.load(progress)
        for model_id, depth in registry.queue_depths().items():
            app.state.metrics.watch_queue(model_id, depth)
        app.state.metrics.watch_engines(registry.engine_stats)
    except Exception as exc:  # reported by /readyz; the process keeps serving what loaded
        app.state.load_error = str(exc)
        log.exception("loading models failed")
