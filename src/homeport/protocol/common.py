"""Types shared by several API families: usage, stream options, stop, base request model."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "Deleted",
    "Metadata",
    "MetadataModify",
    "Request",
    "Wire",
    "omitted_if_none",
    "Stop",
    "StreamOptions",
    "Usage",
    "PromptTokensDetails",
    "CompletionTokensDetails",
]


class Request(BaseModel):
    """Base of every request body: unknown fields are an error, as on api.openai.com."""

    model_config = ConfigDict(extra="forbid")


class Wire(BaseModel):
    """Base of response objects."""


def _is_none(value: object) -> bool:
    return value is None


def omitted_if_none() -> Any:
    """A field (default None) left out rather than sent as null: the spec makes it optional but
    not nullable (e.g. `message.tool_calls`). Decided per field in pydantic-core; a model-wide
    Python serializer cost every streamed chunk three times as much."""
    return Field(None, exclude_if=_is_none)


Stop = str | Annotated[list[str], Field(min_length=1, max_length=4)] | None
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # a 64-bit integer, as the spec says

Metadata = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64)], Annotated[str, StringConstraints(max_length=512)]],
    Field(max_length=16),
]
"""Up to 16 pairs: keys of at most 64 characters, string values of at most 512."""


class MetadataModify(Request):
    """An update that changes only an object's metadata."""

    metadata: Metadata | None = None


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool = True


class StreamOptions(Request):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0
    audio_tokens: int = 0


class CompletionTokensDetails(BaseModel):
    reasoning_tokens: int = 0
    audio_tokens: int = 0
    accepted_prediction_tokens: int = 0
    rejected_prediction_tokens: int = 0


class Usage(Wire):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = omitted_if_none()
    completion_tokens_details: CompletionTokensDetails | None = omitted_if_none()

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens),
            completion_tokens_details=CompletionTokensDetails(),
        )
