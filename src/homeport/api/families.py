"""Every API family, declared once.

A family is what a key's `endpoints` scope names: the URL prefixes it covers. A model-calling
family also declares its endpoint, its request body, how its usage is recorded and its local
service; api/model_call.py serves them all through one pipeline (plan → cache → admit → run →
settle → meter → log), and models served by upstream servers are relayed on the same path.
Adding a model-calling family is its protocol module, its service, and one entry in FAMILIES.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..protocol.chat import ChatCompletionRequest
from ..protocol.common import Request
from ..protocol.completions import CompletionRequest
from ..protocol.embeddings import EmbeddingRequest
from ..protocol.messages import MessagesRequest
from ..protocol.moderations import ModerationRequest
from ..protocol.responses import ResponseCompact, ResponseCreate
from ..services.inference.chat import ChatService
from ..services.inference.completions import CompletionService
from ..services.inference.embeddings import EmbeddingService
from ..services.inference.stored import StoredCompletions
from ..services.kit import Kit
from ..services.messages.service import MessagesService
from ..services.moderations.service import ModerationService
from ..services.responses.compaction import Compaction
from ..services.responses.service import ResponseService

__all__ = [
    "FAMILIES",
    "Family",
    "ModelCall",
    "ModelService",
    "SCOPES",
    "StreamingModelService",
    "endpoint_family",
    "model_calls",
]


class ModelService(Protocol):
    """What a model-calling family's service offers the pipeline.

    `plan` validates (for the key's project) and returns a plan with `estimate` (prompt, max output
    tokens); `create` runs it, and its result's `usage` is what is metered (in chat's terms). A
    streaming family's service also has `stream`, which yields chunks and sets `plan.usage` when
    it completes."""

    async def plan(self, body: Any, project_id: str | None, key_id: str | None) -> Any: ...

    async def create(self, plan: Any) -> Any: ...


class StreamingModelService(ModelService, Protocol):
    def stream(self, plan: Any) -> AsyncIterator[Any]: ...


@dataclass(frozen=True)
class ModelCall:
    path: str
    """The POST endpoint; an upstream model gets it under its `base_url` (which ends in /v1)."""
    request: type[Request]
    usage: Literal["completions", "embeddings", "moderations"]
    """The usage report (/v1/organization/usage/{kind}) that counts these calls."""
    service: Callable[[Kit], ModelService]
    """Builds the family's local service."""
    relay: bool = True
    """Models served by upstream servers are relayed to the same endpoint there."""
    cacheable: Callable[[Any], bool] = lambda body: True
    """Whether this request, if deterministic, may be answered from the response cache (it has no
    side effects the cache would skip)."""
    sse: Literal["openai", "anthropic"] = "openai"
    """How its streams are written (api/sse.py)."""


@dataclass(frozen=True)
class Family:
    name: str
    prefixes: tuple[str, ...]
    """The paths a key scoped to this family may call."""
    calls: tuple[ModelCall, ...] = ()
    """Its model-calling endpoints."""


def _stateless(body: ResponseCreate) -> bool:
    """A response that stores nothing and continues no conversation: the cache may answer it."""
    return body.store is False and body.conversation is None and not body.background


FAMILIES: tuple[Family, ...] = (
    Family("models", ("/v1/models",)),
    Family("chat", ("/v1/chat/",), (
           ModelCall("/v1/chat/completions", ChatCompletionRequest, "completions",
                     lambda k: ChatService(k.registry, StoredCompletions(k.db))),)),
    Family("completions", ("/v1/completions",), (
           ModelCall("/v1/completions", CompletionRequest, "completions", lambda k: CompletionService(k.registry)),)),
    Family("embeddings", ("/v1/embeddings",), (
           ModelCall("/v1/embeddings", EmbeddingRequest, "embeddings", lambda k: EmbeddingService(k.registry)),)),
    Family("moderations", ("/v1/moderations",), (
           ModelCall("/v1/moderations", ModerationRequest, "moderations", lambda k: ModerationService(k.registry),
                     relay=False),)),
    Family("responses", ("/v1/responses", "/v1/conversations"), (
           ModelCall("/v1/responses", ResponseCreate, "completions", ResponseService, relay=False,
                     cacheable=_stateless),
           ModelCall("/v1/responses/compact", ResponseCompact, "completions", Compaction, relay=False,
                     cacheable=lambda body: False))),
    Family("messages", ("/v1/messages",), (  # Anthropic's Messages API, on the chat service
           ModelCall("/v1/messages", MessagesRequest, "completions", lambda k: MessagesService(ChatService(k.registry)),
                     relay=False, sse="anthropic"),)),
    Family("usage", ("/v1/organization/usage/", "/v1/organization/costs")),
    Family("files", ("/v1/files", "/v1/uploads")),
    Family("vector_stores", ("/v1/vector_stores",)),
    Family("assistants", ("/v1/assistants", "/v1/threads")),
    Family("batches", ("/v1/batches",)),
    Family("audio", ("/v1/audio",)),
)  # fmt: skip

SCOPES: tuple[str, ...] = tuple(f.name for f in FAMILIES)
"""What a key's `endpoints` scope can name."""


def endpoint_family(path: str) -> str | None:
    return next((f.name for f in FAMILIES if path.startswith(f.prefixes)), None)


def model_calls() -> list[tuple[Family, ModelCall]]:
    return [(f, call) for f in FAMILIES for call in f.calls]
