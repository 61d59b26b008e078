"""The MiniLM encoder, on its ONNX Runtime graph and on NumPy, against vectors produced by
sentence-transformers (PyTorch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from homeport.backends.bert import BertEncoder
from homeport.services.inference.registry import locate_weights
from homeport.settings import DEFAULT_MODELS

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module", params=["onnx", "numpy"])
def encoder(request: pytest.FixtureRequest) -> BertEncoder:
    cfg = next(m for m in DEFAULT_MODELS if m.id == "all-minilm-l6-v2")
    return BertEncoder(locate_weights(cfg, Path("/nonexistent")), runtime=request.param)


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


def test_long_inputs_and_padding_match_the_numpy_encoder(encoder: BertEncoder) -> None:
    """Inputs up to the 512-position window, batched with short ones (padding, masking)."""
    cfg = next(m for m in DEFAULT_MODELS if m.id == "all-minilm-l6-v2")
    numpy = BertEncoder(locate_weights(cfg, Path("/nonexistent")), runtime="numpy")
    texts = ["short one", " ".join(f"word{i}" for i in range(400)), "a middle sized sentence " * 20]
    tokens = [ids[: encoder.max_tokens] for ids in encoder.tokenize(texts)]
    assert np.abs(encoder.embed_tokens(tokens) - numpy.embed_tokens(tokens)).max() < 1e-5


def test_the_int8_graph_stays_close_to_the_reference_and_ranks_alike() -> None:
    """Opt-in int8 weights (`embedding_runtime: onnx-int8`): near, not equal, vectors — close
    enough that the same neighbours come first."""
    cfg = next(m for m in DEFAULT_MODELS if m.id == "all-minilm-l6-v2")
    int8 = BertEncoder(locate_weights(cfg, Path("/nonexistent")), runtime="onnx-int8")
    reference = np.array(REFERENCE["embeddings"], dtype=np.float32)
    got = int8.embed_tokens(int8.tokenize(REFERENCE["texts"]))
    assert np.abs(np.linalg.norm(got, axis=1) - 1).max() < 1e-5
    assert ((got * reference).sum(1) > 0.98).all()  # short sentences move most (long chunks: > 0.996)
    assert (np.argmax(got @ reference.T, axis=1) == np.arange(len(reference))).all()  # each finds its own


def test_sub_batches_cover_every_input_once_within_their_limits() -> None:
    from homeport.backends.bert import _SUB_BATCH_MAX, _SUB_BATCH_TOKENS, _sub_batches

    rng = np.random.default_rng(7)
    lengths = [int(n) for n in rng.integers(3, 514, 300)] + [14] * 100  # long chunks and short sentences
    groups = _sub_batches(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        padded = max(lengths[i] for i in group) * len(group)
        assert len(group) == 1 or (len(group) <= _SUB_BATCH_MAX and padded <= _SUB_BATCH_TOKENS)
    assert max(len(g) for g in groups) == _SUB_BATCH_MAX  # short ones still go 32 at a time
    assert all(len(g) == 1 for g in groups if lengths[g[0]] > _SUB_BATCH_TOKENS // 2)
