"""Database tables. Rows are storage, not wire objects: services convert at their boundary."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, PrimaryKeyConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "ApiKeyRow",
    "ProjectRow",
    "RateLimitRow",
    "UsageRow",
    "UsageHourlyRow",
    "FileRow",
    "UploadRow",
    "UploadPartRow",
    "VectorStoreRow",
    "VectorStoreFileRow",
    "FileBatchRow",
    "ChunkRow",
    "AssistantObjectRow",
]


class Base(DeclarativeBase):
    pass


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    redacted: Mapped[str] = mapped_column(String(40))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_used: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    budget_micro_usd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    spent_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    models: Mapped[str | None] = mapped_column(Text, nullable=True)  # comma-separated allow-list
    endpoints: Mapped[str | None] = mapped_column(Text, nullable=True)  # comma-separated endpoint families
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    archived_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    log_prompts: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    response_retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Stored responses and conversations older than this are deleted; None: `retention_days`."""
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The project's data (files, vector stores, stored completions, threads, batches, raw usage
    records; responses too unless set above) older than this is deleted; None: kept."""
    moderate: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """The moderation guardrail: `input`, `output` or `both`; None: off."""
    moderation_action: Mapped[str | None] = mapped_column(String(8), nullable=True)
    """What a flagged request gets: `block` (the default) or `flag` (recorded, served)."""
    model_aliases: Mapped[str | None] = mapped_column(Text, nullable=True)
    """JSON {name: served model}: the project's own model names."""


class RateLimitRow(Base):
    """Limits of one key or project (`owner_id`) on one model (`*`: every model); None: no limit."""

    __tablename__ = "rate_limits"
    __table_args__ = (UniqueConstraint("owner_id", "model", name="uq_rate_limits_owner_model"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    max_requests_per_1_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_tokens_per_1_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_requests_per_1_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_tokens_per_1_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    batch_1_day_max_input_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class UsageRow(Base):
    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20))  # completions | embeddings | moderations
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(100))
    status: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    input_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    output_micro_usd: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    flagged: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """1 when a project's moderation guardrail flagged the request (or its output)."""
    request_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class _UsageSums:
    """The columns the usage rollups share: the group, and its sums."""

    kind: Mapped[str] = mapped_column(String(20))
    project_id: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    requests: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    input_micro_usd: Mapped[int] = mapped_column(BigInteger)
    output_micro_usd: Mapped[int] = mapped_column(BigInteger)
    flagged: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class UsageHourlyRow(_UsageSums, Base):
    """Successful requests summed per hour, kind, project, key and model ('' for none)."""

    __tablename__ = "usage_hourly"
    __table_args__ = (PrimaryKeyConstraint("hour", "kind", "project_id", "key_id", "model", name="pk_usage_hourly"),)

    hour: Mapped[int] = mapped_column(BigInteger)


class UsageDailyRow(_UsageSums, Base):
    """The hourly rollups summed per UTC day (the dashboard reads days)."""

    __tablename__ = "usage_daily"
    __table_args__ = (PrimaryKeyConstraint("day", "kind", "project_id", "key_id", "model", name="pk_usage_daily"),)

    day: Mapped[int] = mapped_column(BigInteger)


class RequestStatsDailyRow(Base):
    """Every request (errors too) counted per UTC day, project ('' for none), model and latency
    bucket: bucket b holds latencies in (2^((b-1)/4), 2^(b/4)] ms, so percentiles read from it are
    within 19%."""

    __tablename__ = "request_stats_daily"
    __table_args__ = (PrimaryKeyConstraint("day", "project_id", "model", "latency_bucket",
                                           name="pk_request_stats_daily"),)  # fmt: skip

    day: Mapped[int] = mapped_column(BigInteger)
    project_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    latency_bucket: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)


class FileRow(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    filename: Mapped[str] = mapped_column(String(500))
    purpose: Mapped[str] = mapped_column(String(40))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    blob: Mapped[str] = mapped_column(String(200))  # the blob store's key


class UploadRow(Base):
    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    filename: Mapped[str] = mapped_column(String(500))
    purpose: Mapped[str] = mapped_column(String(40))
    bytes: Mapped[int] = mapped_column(BigInteger)
    mime_type: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # pending | completed | cancelled | expired
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    file_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class UploadPartRow(Base):
    __tablename__ = "upload_parts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    upload_id: Mapped[str] = mapped_column(String(40), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    blob: Mapped[str] = mapped_column(String(200))


class VectorStoreRow(Base):
    __tablename__ = "vector_stores"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_active_at: Mapped[int] = mapped_column(BigInteger)
    metadata_json: Mapped[str] = mapped_column("metadata", Text)
    expires_after_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model: Mapped[str] = mapped_column(String(200))  # the embedding model its vectors come from
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Bumped with every change to its chunks: replicas' in-memory indexes sync when it moves."""


class VectorStoreFileRow(Base):
    __tablename__ = "vector_store_files"

    vector_store_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    batch_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20))  # in_progress | completed | cancelled | failed
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {code, message}
    usage_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[int] = mapped_column(BigInteger)
    chunk_tokens: Mapped[int] = mapped_column(Integer)
    overlap_tokens: Mapped[int] = mapped_column(Integer)
    attributes: Mapped[str] = mapped_column(Text)  # JSON object


class FileBatchRow(Base):
    __tablename__ = "vector_store_file_batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    vector_store_id: Mapped[str] = mapped_column(String(40), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class ChunkRow(Base):
    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    vector_store_id: Mapped[str] = mapped_column(String(40))
    file_id: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    tokens: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, the embedding model's dimensions


class AssistantObjectRow(Base):
    """An assistant, thread, message, run or run step: its wire object as JSON, plus the columns
    lookups need. Ids are time-sortable, so ordering by id is ordering by creation."""

    __tablename__ = "assistant_objects"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    thread_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)


class ResponseRow(Base):
    """A stored response: its wire object, its input items, and its context — every item up to and
    including its output — so a response continuing it (previous_response_id) reads one row."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    input_items: Mapped[str] = mapped_column(Text)
    context: Mapped[str] = mapped_column(Text)
    request: Mapped[str | None] = mapped_column(Text, nullable=True)
    """A background response's request, for the job that runs it."""
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    metadata_json: Mapped[str] = mapped_column(Text)


class ConversationItemRow(Base):
    """An item of a conversation; `seq` orders them."""

    __tablename__ = "conversation_items"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)


class StoredCompletionRow(Base):
    """A chat completion created with `store: true`: its request messages and its response."""

    __tablename__ = "stored_completions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    model: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)
    metadata_json: Mapped[str] = mapped_column(Text)
    messages: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)


class ResponseEventRow(Base):
    """An event of a background response, kept so a client can stream it (again) from any replica."""

    __tablename__ = "response_events"

    response_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(Text)


class BatchRow(Base):
    """A batch: its wire object as JSON, with the columns lookups need."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)


class BatchResultRow(Base):
    """The result of one input line (its output-file or error-file line)."""

    __tablename__ = "batch_results"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(Text)


class AuditLogRow(Base):
    """One audit log entry (OpenAI's shape in `body`); the table refuses UPDATE and DELETE."""

    __tablename__ = "audit_logs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), index=True)
    effective_at: Mapped[int] = mapped_column(BigInteger, index=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resource_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    body: Mapped[str] = mapped_column(Text)


class PromptLogRow(Base):
    """A logged request and its output (projects that opt in); `body` JSON, sealed when encryption
    at rest is on; `end_user` is the request's user, safety_identifier or metadata.user_id."""

    __tablename__ = "prompt_logs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, index=True)
    project_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    end_user: Mapped[str | None] = mapped_column(String(512), nullable=True, index=True)
    body: Mapped[str] = mapped_column(Text)


class UserModelRow(Base):
    """A model `homeport models add` (or POST /v1/homeport/models) added: its config as JSON. In the
    database, so every replica serves the same models."""

    __tablename__ = "user_models"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
