"""`/v1/files` and `/v1/uploads` request bodies (file uploads themselves are multipart forms)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Request

__all__ = ["UploadComplete", "UploadCreate", "UploadExpiresAfter"]


class UploadExpiresAfter(Request):
    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2592000)


class UploadCreate(Request):
    filename: str = Field(min_length=1, max_length=500)
    purpose: str
    bytes: int = Field(ge=1)
    mime_type: str = Field(min_length=1, max_length=200)
    expires_after: UploadExpiresAfter | None = None


class UploadComplete(Request):
    part_ids: list[str] = Field(min_length=1)
    md5: str | None = None
