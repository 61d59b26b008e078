"""Moderations: texts → OpenAI's thirteen categories, with scores and flags.

Each input is cut into sentences (long ones into pieces of at most 40 words), every piece is
scored, and an input's score per category is its highest piece's: a threat inside a long, calm
text is not averaged away, and both models see short spans (the toxicity network reads 100 words;
the embedding model 512 tokens). Image parts are refused: no image classifier ships in a registry package.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from ...backends.base import EmbeddingEngine, prepared
from ...backends.toxicity import ToxicityEngine
from ...errors import InvalidRequest
from ...ids import new_id
from ...protocol.embeddings import EmbeddingUsage
from ...protocol.moderations import ImagePart, Moderation, ModerationRequest, ModerationResponse
from ..inference.registry import ModelRegistry
from .categories import CATEGORIES, THRESHOLD, score
from .exemplars import BENIGN, EXEMPLARS

__all__ = ["ModerationService", "windows"]

_WINDOW_WORDS = 40
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_TEXT_ONLY = {c: ["text"] for c in CATEGORIES}


def windows(text: str) -> list[str]:
    """The text's sentences, those over 40 words in pieces (an empty text is one empty window)."""
    pieces = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        pieces += [" ".join(words[i : i + _WINDOW_WORDS]) for i in range(0, len(words), _WINDOW_WORDS)]
    return pieces or [""]


@dataclass
class _Plan:
    request: ModerationRequest
    classifier: ToxicityEngine
    embedder: EmbeddingEngine
    texts: list[str]
    tokens: list[list[int]] = field(default_factory=list)

    @property
    def estimate(self) -> tuple[int, int]:
        return sum(len(t) for t in self.tokens), 0


class _Anchors:
    """The exemplar sentences' embeddings, computed once per embedding engine."""

    def __init__(self) -> None:
        self._by_engine: dict[int, tuple[dict[str, np.ndarray], np.ndarray]] = {}
        self._lock = asyncio.Lock()

    async def of(self, embedder: EmbeddingEngine) -> tuple[dict[str, np.ndarray], np.ndarray]:
        async with self._lock:
            if id(embedder) not in self._by_engine:
                names = list(EXEMPLARS)
                sentences = [s for n in names for s in EXEMPLARS[n]] + list(BENIGN)
                vectors = await embedder.embed(embedder.tokenize(sentences))
                sets, start = {}, 0
                for name in names:
                    sets[name] = vectors[start : start + len(EXEMPLARS[name])]
                    start += len(EXEMPLARS[name])
                self._by_engine[id(embedder)] = (sets, vectors[start:])
            return self._by_engine[id(embedder)]


class ModerationService:
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        self._anchors = _Anchors()

    async def plan(
        self, request: ModerationRequest, project_id: str | None = None, key_id: str | None = None
    ) -> _Plan:
        _, classifier, embedder = self._registry.moderation(request.model)
        texts = _texts(request.input)
        plan = _Plan(request, classifier, embedder, texts)
        plan.tokens = await prepared(partial(embedder.tokenize, [t or " " for t in texts]), sum(map(len, texts)))
        return plan

    async def create(self, plan: _Plan) -> ModerationResponse:
        results = await self.classify(plan.texts, plan.classifier, plan.embedder)
        tokens = sum(len(t) for t in plan.tokens)
        return ModerationResponse(
            id=new_id("modr-"),
            model=plan.request.model,
            results=results,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    async def check(self, model: str, texts: list[str]) -> list[Moderation]:
        """Moderate texts with a moderation model by name (guardrails)."""
        _, classifier, embedder = self._registry.moderation(model)
        return await self.classify(texts, classifier, embedder)

    async def classify(
        self, texts: list[str], classifier: ToxicityEngine, embedder: EmbeddingEngine
    ) -> list[Moderation]:
        pieces = [windows(t) for t in texts]
        flat = [w for p in pieces for w in p]
        anchors, benign = await self._anchors.of(embedder)
        labels = await classifier.scores(flat)
        vectors = await embedder.embed(_bounded(embedder, flat))
        similarity = {name: (vectors @ a.T).max(axis=1) for name, a in anchors.items()}
        scores = score(labels, similarity, (vectors @ benign.T).max(axis=1))
        results, start = [], 0
        for p in pieces:
            end = start + len(p)
            per = {c: float(scores[c][start:end].max()) for c in CATEGORIES}
            flags = {c: s >= THRESHOLD for c, s in per.items()}
            results.append(Moderation(flagged=any(flags.values()), categories=flags, category_scores=per,
                                      category_applied_input_types=_TEXT_ONLY))  # fmt: skip
            start = end
        return results


def _bounded(embedder: EmbeddingEngine, texts: list[str]) -> list[list[int]]:
    """Token ids within the embedding model's window (40 words rarely reach it; a run of symbols can)."""
    return [ids[: embedder.max_tokens] for ids in embedder.tokenize([t or " " for t in texts])]


def _texts(raw: object) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    assert isinstance(raw, list)
    texts = []
    for i, item in enumerate(raw):
        if isinstance(item, ImagePart):
            raise InvalidRequest(
                "This server's moderation model classifies text only; no image classifier is installed.",
                param=f"input.[{i}].image_url",
                code="invalid_value",
            )
        texts.append(item if isinstance(item, str) else item.text)
    return texts
