"""Platform administration: OpenAI's organization shapes (projects, their API keys and rate
limits, admin keys), and Homeport's own request for creating a project key over the API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from .common import Request

# What the database columns hold (storage/tables.py): requests-per-period limits and retention days
# are 32-bit integers, token counts and times 64-bit. A larger number is a 400 naming the field (an
# error from the CLI, a message on the dashboard), not a 500.
INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1
MAX_USD = 1e12  # budgets are kept in millionths of a dollar
MAX_DAYS = 36_500  # a key's life, a retention period: a century

__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "MAX_USD",
    "MAX_DAYS",
    "Project",
    "ProjectCreate",
    "ProjectUpdate",
    "ProjectApiKey",
    "ProjectApiKeyCreate",
    "ProjectApiKeyCreated",
    "KeyDeleted",
    "ProjectRateLimit",
    "ProjectRateLimitUpdate",
    "AdminApiKey",
    "AdminApiKeyCreate",
    "AdminApiKeyCreated",
    "KeyOwner",
]


class Project(BaseModel):
    id: str
    object: Literal["organization.project"] = "organization.project"
    name: str
    created_at: int
    archived_at: int | None = None
    status: Literal["active", "archived"] = "active"


class ProjectCreate(Request):
    name: str = Field(min_length=1, max_length=200)


class ProjectUpdate(Request):
    name: str | None = Field(default=None, min_length=1, max_length=200)


class KeyOwner(BaseModel):
    """Homeport keys have no user behind them: they are owned like service-account keys."""

    type: Literal["service_account", "user"] = "service_account"
    service_account: dict[str, JsonValue] | None = None


class ProjectApiKey(BaseModel):
    object: Literal["organization.project.api_key"] = "organization.project.api_key"
    redacted_value: str
    name: str
    created_at: int
    last_used_at: int | None
    id: str
    owner_project_access: Literal["active", "inactive"] = "active"
    owner: KeyOwner
    # Homeport's additions: the key's own limits and budgets.
    expires_at: int | None = None
    models: list[str] | None = None
    endpoints: list[str] | None = None
    read_only: bool = False
    budget_tokens: int | None = None
    budget_usd: float | None = None


class ProjectApiKeyCreate(Request):
    """POST /v1/homeport/projects/{project_id}/api_keys (OpenAI creates keys only in its dashboard)."""

    name: str = Field(min_length=1, max_length=200)
    max_requests_per_1_minute: int | None = Field(default=None, ge=0, le=INT32_MAX)
    max_tokens_per_1_minute: int | None = Field(default=None, ge=0, le=INT32_MAX)
    max_requests_per_1_day: int | None = Field(default=None, ge=0, le=INT32_MAX)
    max_tokens_per_1_day: int | None = Field(default=None, ge=0, le=INT64_MAX)
    budget_tokens: int | None = Field(default=None, ge=0, le=INT64_MAX)
    budget_usd: float | None = Field(default=None, ge=0, le=MAX_USD)
    expires_in_seconds: int | None = Field(default=None, ge=1, le=MAX_DAYS * 86400)
    models: list[str] | None = None
    endpoints: list[str] | None = None
    read_only: bool = False


class ProjectApiKeyCreated(ProjectApiKey):
    value: str
    """The secret; shown only in this response."""


class KeyDeleted(BaseModel):
    object: str
    id: str
    deleted: bool = True


class ProjectRateLimit(BaseModel):
    """One model's limits for a project; 0 means no limit. Homeport adds `max_tokens_per_1_day`,
    and the model `*` (every model together)."""

    object: Literal["project.rate_limit"] = "project.rate_limit"
    id: str
    model: str
    max_requests_per_1_minute: int
    max_tokens_per_1_minute: int
    max_requests_per_1_day: int
    max_tokens_per_1_day: int
    batch_1_day_max_input_tokens: int


class ProjectRateLimitUpdate(Request):
    max_requests_per_1_minute: int | None = Field(default=None, ge=0, le=INT32_MAX)
    max_tokens_per_1_minute: int | None = Field(default=None, ge=0, le=INT32_MAX)
    max_requests_per_1_day: int | None = Field(default=None, ge=0, le=INT32_MAX)
    max_tokens_per_1_day: int | None = Field(default=None, ge=0, le=INT64_MAX)
    max_images_per_1_minute: int | None = None
    max_audio_megabytes_per_1_minute: int | None = None
    batch_1_day_max_input_tokens: int | None = Field(default=None, ge=0, le=INT64_MAX)


class AdminApiKey(BaseModel):
    object: Literal["organization.admin_api_key"] = "organization.admin_api_key"
    id: str
    name: str | None
    redacted_value: str
    created_at: int
    expires_at: int | None = None
    last_used_at: int | None = None
    owner: dict[str, JsonValue]


class AdminApiKeyCreate(Request):
    name: str = Field(min_length=1, max_length=200)
    expires_in_seconds: int | None = Field(default=None, ge=1, le=31536000)


class AdminApiKeyCreated(AdminApiKey):
    value: str


class ErasureCreate(Request):
    """POST /v1/homeport/erasure: delete every stored object that names this end user."""

    user: str = Field(min_length=1, max_length=512)
