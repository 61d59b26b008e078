"""`POST /v1/embeddings` wire types."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from .common import Request

__all__ = ["EmbeddingRequest", "Embedding", "EmbeddingList", "EmbeddingUsage"]

_MAX_INPUTS = 2048
Texts = Annotated[list[str], Field(min_length=1, max_length=_MAX_INPUTS)]
TokenIds = Annotated[list[int], Field(min_length=1, max_length=_MAX_INPUTS)]
TokenIdLists = Annotated[list[Annotated[list[int], Field(min_length=1)]], Field(min_length=1, max_length=_MAX_INPUTS)]


class EmbeddingRequest(Request):
    model: str
    input: str | Texts | TokenIds | TokenIdLists
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # str when encoding_format is base64 (little-endian float32)


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
