"""Embeddings: strings or token arrays → unit vectors, optionally shortened, float or base64."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import partial

import numpy as np

from ...backends.base import EmbeddingEngine, prepared
from ...errors import ContextLengthExceeded, InvalidRequest
from ...protocol.embeddings import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from .registry import ModelRegistry

__all__ = ["EmbeddingService"]


@dataclass
class _Plan:
    request: EmbeddingRequest
    engine: EmbeddingEngine
    batch: list[list[int]]

    @property
    def estimate(self) -> tuple[int, int]:
        """(prompt, output) tokens: exact for embeddings."""
        return sum(len(ids) for ids in self.batch), 0


class EmbeddingService:
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    async def plan(
        self, request: EmbeddingRequest, project_id: str | None = None, key_id: str | None = None
    ) -> _Plan:
        _, engine = self._registry.embedding(request.model)
        if request.dimensions is not None and request.dimensions > engine.dimensions:
            raise InvalidRequest(
                f"This model has {engine.dimensions} dimensions; 'dimensions' cannot be {request.dimensions}.",
                param="dimensions",
            )
        raw = request.input
        chars = len(raw) if isinstance(raw, str) else sum(len(x) if isinstance(x, str | list) else 1 for x in raw)
        batch = await prepared(partial(_token_batch, raw, engine.tokenize, engine.vocab_size), chars)
        for i, ids in enumerate(batch):
            if len(ids) > engine.max_tokens:
                raise ContextLengthExceeded(
                    f"This model's maximum input length is {engine.max_tokens} tokens; "
                    f"input {i} has {len(ids)} tokens. Please reduce the length of the input.",
                    param="input",
                )
        return _Plan(request, engine, batch)

    async def create(self, plan: _Plan) -> EmbeddingList:
        request, engine, batch = plan.request, plan.engine, plan.batch
        vectors = await engine.embed(batch)
        if request.dimensions is not None and request.dimensions < engine.dimensions:
            # Shorten like text-embedding-3: keep the leading dimensions, then renormalise.
            vectors = vectors[:, : request.dimensions]
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        tokens = sum(len(ids) for ids in batch)
        return EmbeddingList(
            data=[Embedding(index=i, embedding=_encode(v, request.encoding_format)) for i, v in enumerate(vectors)],
            model=request.model,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )


def _token_batch(raw: object, tokenize, vocab_size: int) -> list[list[int]]:  # type: ignore[no-untyped-def]
    if isinstance(raw, str):
        raw = [raw]
    assert isinstance(raw, list)
    if all(isinstance(x, str) for x in raw):
        for i, text in enumerate(raw):
            if not text:
                raise InvalidRequest(f"Input {i} is empty; every input must be a non-empty string.", param="input")
        return tokenize(raw)
    batch = [raw] if isinstance(raw[0], int) else raw
    for ids in batch:
        if any(not 0 <= t < vocab_size for t in ids):
            raise InvalidRequest(f"Token ids must be in 0..{vocab_size - 1} for this model.", param="input")
    return [list(ids) for ids in batch]


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()
