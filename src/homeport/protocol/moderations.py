"""`POST /v1/moderations` wire types (OpenAI's omni-moderation shape)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from .common import Request
from .embeddings import EmbeddingUsage

__all__ = ["ImagePart", "ModerationRequest", "Moderation", "ModerationResponse", "TextPart"]

_MAX_INPUTS = 2048  # OpenAI documents none; the embeddings endpoint's bound


class TextPart(Request):
    type: Literal["text"]
    text: str


class _ImageUrl(Request):
    url: str


class ImagePart(Request):
    type: Literal["image_url"]
    image_url: _ImageUrl


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ModerationRequest(Request):
    input: str | Annotated[list[str], Field(min_length=1, max_length=_MAX_INPUTS)] | Annotated[
        list[Part], Field(min_length=1, max_length=_MAX_INPUTS)
    ]
    model: str = "omni-moderation-latest"


class Moderation(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[Literal["text", "image"]]]


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[Moderation]
    usage: EmbeddingUsage | None = Field(None, exclude=True)
    """Metered (usage reports, limits), not sent: OpenAI's moderation object has no `usage`."""
