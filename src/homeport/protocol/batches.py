"""`/v1/batches` request bodies and the lines of a batch's input file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, JsonValue

from .common import Metadata, Request

__all__ = ["BatchCreate", "BatchLine", "OutputExpiresAfter"]


class OutputExpiresAfter(Request):
    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2592000)


class BatchCreate(Request):
    input_file_id: str
    endpoint: str
    completion_window: Literal["24h"]
    metadata: Metadata | None = None
    output_expires_after: OutputExpiresAfter | None = None


class BatchLine(BaseModel):
    """One line of the input file."""

    custom_id: str = Field(min_length=1, max_length=512)
    method: Literal["POST"]
    url: str
    body: dict[str, JsonValue]
