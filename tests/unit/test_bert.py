"""The NumPy MiniLM encoder against vectors produced by sentence-transformers (PyTorch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from homeport.backends.bert import BertEncoder
from homeport.services.inference.registry import locate_weights
from homeport.settings import DEFAULT_MODELS

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def encoder() -> BertEncoder:
    cfg = next(m for m in DEFAULT_MODELS if m.id == "all-minilm-l6-v2")
    return BertEncoder(locate_weights(cfg, Path("/nonexistent")))


def test_token_counts_match_the_reference_tokenizer(encoder: BertEncoder) -> None:
    assert [len(ids) for ids in encoder.tokenize(REFERENCE["texts"])] == REFERENCE["token_counts"]


def test_vectors_match_sentence_transformers(encoder: BertEncoder) -> None:
    got = encoder.embed_tokens(encoder.tokenize(REFERENCE["texts"]))
    assert got.dtype == np.float32
    assert np.abs(got - np.array(REFERENCE["embeddings"])).max() < 1e-5


def test_batching_does_not_change_vectors(encoder: BertEncoder) -> None:
    texts = REFERENCE["texts"] * 20  # several sub-batches of mixed lengths
    together = encoder.embed_tokens(encoder.tokenize(texts))
    alone = encoder.embed_tokens(encoder.tokenize(texts[:1]))
    assert np.allclose(together[0], alone[0], atol=1e-6)
    assert np.allclose(together[len(REFERENCE["texts"])], alone[0], atol=1e-6)
