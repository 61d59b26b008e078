"""`/v1/vector_stores` wire types: stores, their files and file batches, search."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from .common import Metadata, Request, Wire, omitted_if_none

__all__ = [
    "Attributes",
    "AutoChunking",
    "ChunkingStrategy",
    "ComparisonFilter",
    "CompoundFilter",
    "ExpiresAfter",
    "FileCounts",
    "FileError",
    "Filter",
    "RankingOptions",
    "SearchResult",
    "SearchResultsPage",
    "StaticChunking",
    "StaticChunkingSettings",
    "TextContent",
    "VectorStore",
    "VectorStoreCreate",
    "VectorStoreFile",
    "VectorStoreFileAttach",
    "VectorStoreFileBatch",
    "VectorStoreFileBatchCreate",
    "VectorStoreFileContent",
    "VectorStoreFileUpdate",
    "VectorStoreSearch",
    "VectorStoreUpdate",
]

# ---- requests --------------------------------------------------------------------------

# No NUL characters and no NaN/Infinity: neither has a place in JSON that PostgreSQL reads (filters.py).
_Number = Annotated[float, Field(allow_inf_nan=False)]
_NoNul = StringConstraints(pattern=r"^[^\x00]*$")
Attribute = bool | int | _Number | Annotated[str, _NoNul, StringConstraints(max_length=512)]
Attributes = Annotated[dict[Annotated[str, _NoNul, StringConstraints(max_length=64)], Attribute], Field(max_length=16)]
"""A file's attributes in a store: up to 16, filterable in search."""


class StaticChunkingSettings(Request):
    max_chunk_size_tokens: int
    chunk_overlap_tokens: int


class StaticChunking(Request):
    type: Literal["static"]
    static: StaticChunkingSettings


class AutoChunking(Request):
    type: Literal["auto"]


ChunkingStrategy = Annotated[AutoChunking | StaticChunking, Field(discriminator="type")]


class ExpiresAfter(Request):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class VectorStoreCreate(Request):
    file_ids: list[str] | None = Field(default=None, max_length=500)
    name: str | None = None
    description: str | None = None
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata | None = None


class VectorStoreUpdate(Request):
    name: str | None = None
    expires_after: ExpiresAfter | None = None
    """Set to null to make the store never expire."""
    metadata: Metadata | None = None


class VectorStoreFileAttach(Request):
    file_id: str
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None


class BatchFile(Request):
    file_id: str
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None


class VectorStoreFileBatchCreate(Request):
    file_ids: list[str] | None = Field(default=None, max_length=2000)
    files: list[BatchFile] | None = Field(default=None, max_length=2000)
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes | None = None


class VectorStoreFileUpdate(Request):
    attributes: Attributes | None


class ComparisonFilter(Request):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
    key: Annotated[str, _NoNul]
    value: (Annotated[str, _NoNul] | int | _Number | bool
            | list[Annotated[str, _NoNul] | int | _Number | bool])  # fmt: skip


class CompoundFilter(Request):
    type: Literal["and", "or"]
    filters: list[Filter] = Field(min_length=1)


Filter = Annotated[ComparisonFilter | CompoundFilter, Field(discriminator="type")]


class RankingOptions(Request):
    ranker: Literal["auto", "default-2024-11-15", "none"] = "auto"
    score_threshold: float = Field(default=0.0, ge=0, le=1)


class VectorStoreSearch(Request):
    query: str | list[str]
    rewrite_query: bool | None = None
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: Filter | None = None
    ranking_options: RankingOptions | None = None


# ---- objects ---------------------------------------------------------------------------


class FileCounts(BaseModel):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0


class VectorStore(Wire):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCounts
    status: Literal["expired", "in_progress", "completed"]
    expires_after: ExpiresAfter | None = omitted_if_none()
    expires_at: int | None
    last_active_at: int | None
    metadata: dict[str, str]


class FileError(BaseModel):
    code: str
    message: str


class VectorStoreFile(BaseModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    last_error: FileError | None
    chunking_strategy: StaticChunking
    attributes: dict[str, Attribute]


class VectorStoreFileBatch(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: FileCounts


class TextContent(BaseModel):
    type: Literal["text"] = "text"
    text: str


class SearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, Attribute]
    content: list[TextContent]


class SearchResultsPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool = False
    next_page: str | None = None


class VectorStoreFileContent(BaseModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[TextContent]
    has_more: bool = False
    next_page: str | None = None
