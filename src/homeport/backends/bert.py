"""A BERT sentence-embedding encoder (safetensors weights + HF `tokenizers`): its layers run as an
ONNX Runtime graph built from the weights (backends/bert_onnx.py, the default), or in NumPy.

Why not sentence-transformers: the reference stack needs PyTorch (gigabytes on a fresh machine).
Both runtimes match sentence-transformers' vectors to 3e-7 (tests/unit/test_bert.py compares
against vectors it produced); the ONNX graph is faster than PyTorch on 2 cores, NumPy slower
(bench/embedding_engines.py; docs/architecture.md has the figures by CPU).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from .bert_onnx import OnnxBert, build_graph, quantized

__all__ = ["BertEncoder", "BertEngine"]


@dataclass(frozen=True)
class _Config:
    hidden: int
    heads: int
    layers: int
    eps: float
    max_positions: int
    vocab_size: int


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's "gelu" is the exact erf form, not the tanh approximation (which is off by ~1e-3).
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz–Stegun 7.1.26: max abs error 1.5e-7, below float32 noise; avoids SciPy.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _special_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ValueError(f"tokenizer has no {token} token")
    return int(token_id)


def _prepare_weights(raw: dict[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    """float32, dense weights stored (in, out) and contiguous, Q/K/V fused into one matrix."""
    w = {k: v.astype(np.float32) for k, v in raw.items()}
    for k in [k for k in w if k.startswith("encoder.") and k.endswith(".weight") and w[k].ndim == 2]:
        w[k] = np.ascontiguousarray(w[k].T)
    for i in range(layers):
        p = f"encoder.layer.{i}.attention.self."
        names = [p + part for part in ("query", "key", "value")]
        w[f"encoder.layer.{i}.qkv.weight"] = np.concatenate([w.pop(n + ".weight") for n in names], axis=1)
        w[f"encoder.layer.{i}.qkv.bias"] = np.concatenate([w.pop(n + ".bias") for n in names])
    return w


class BertEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a BERT checkpoint directory."""

    def __init__(
        self, model_dir: Path, max_tokens: int = 512, runtime: str = "onnx", threads: int | None = None
    ) -> None:
        from safetensors.numpy import load_file

        raw = json.loads((model_dir / "config.json").read_text())
        self.config = _Config(
            hidden=raw["hidden_size"],
            heads=raw["num_attention_heads"],
            layers=raw["num_hidden_layers"],
            eps=raw.get("layer_norm_eps", 1e-12),
            max_positions=raw["max_position_embeddings"],
            vocab_size=raw["vocab_size"],
        )
        self.max_tokens = min(max_tokens, self.config.max_positions - 2)  # room for [CLS] [SEP]
        self.dimensions = self.config.hidden
        self._w = _prepare_weights(load_file(str(model_dir / "model.safetensors")), self.config.layers)
        self._onnx: OnnxBert | None = None
        if runtime in ("onnx", "onnx-int8"):  # the same weights as an ONNX Runtime graph (backends/bert_onnx.py)
            c = self.config
            graph = build_graph(self._w, c.hidden, c.heads, c.layers, c.eps)
            self._onnx = OnnxBert(quantized(graph) if runtime == "onnx-int8" else graph, threads)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._cls = _special_id(self._tokenizer, "[CLS]")
        self._sep = _special_id(self._tokenizer, "[SEP]")
        # Tokenizers' Rust core is thread safe, but set-and-call sequences are not.
        self._lock = threading.Lock()

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids without the [CLS]/[SEP] wrapper (what `usage` counts)."""
        with self._lock:
            encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [e.ids for e in encodings]

    def embed_tokens(self, batch: list[list[int]]) -> np.ndarray:
        """Embed pre-tokenised inputs (no special tokens); returns (n, hidden) float32 unit vectors."""
        out = np.empty((len(batch), self.config.hidden), dtype=np.float32)
        for idx in _sub_batches([len(ids) + 2 for ids in batch]):
            out[idx] = self._forward([[self._cls, *batch[i], self._sep] for i in idx])
        return out

    def _forward(self, seqs: list[list[int]]) -> np.ndarray:
        c, w = self.config, self._w
        n, t = len(seqs), max(len(s) for s in seqs)
        ids = np.zeros((n, t), dtype=np.int64)
        mask = np.zeros((n, t), dtype=np.float32)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1.0
        if self._onnx is not None:
            x = self._onnx.hidden(ids, mask)
            pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:t][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], c.eps)
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in range(c.layers):
            x = self._layer(x, bias, f"encoder.layer.{layer}.")
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    def _layer(self, x: np.ndarray, bias: np.ndarray, p: str) -> np.ndarray:
        c, w = self.config, self._w
        n, t, h = x.shape
        d = h // c.heads
        flat = x.reshape(n * t, h)  # 2-D products go straight to one BLAS gemm each
        qkv = flat @ w[p + "qkv.weight"] + w[p + "qkv.bias"]
        q, k, v = (qkv[:, i * h : (i + 1) * h].reshape(n, t, c.heads, d).transpose(0, 2, 1, 3) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n * t, h)
        flat = _layer_norm(
            flat + self._linear(ctx, p + "attention.output.dense"),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            c.eps,
        )
        inner = _gelu(self._linear(flat, p + "intermediate.dense"))
        out = _layer_norm(
            flat + self._linear(inner, p + "output.dense"),
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
            c.eps,
        )
        return out.reshape(n, t, h)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self._w[name + ".weight"] + self._w[name + ".bias"]


class BertEngine:
    """The EmbeddingEngine over a BertEncoder: one worker thread (BLAS already uses every core)."""

    def __init__(
        self, model_dir: Path, max_tokens: int = 512, runtime: str = "onnx", threads: int | None = None
    ) -> None:
        self._encoder = BertEncoder(model_dir, max_tokens, runtime, threads)
        self.dimensions = self._encoder.dimensions
        self.max_tokens = self._encoder.max_tokens
        self.vocab_size = self._encoder.config.vocab_size
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bert")

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self._encoder.tokenize(texts)

    async def embed(self, batch: list[list[int]]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._encoder.embed_tokens, batch)

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


# A sub-batch holds at most this many (padded) tokens and this many inputs: the working set stays
# in cache. Measured (bench/embedding_batches.py): 32 short sentences a run is fastest, but a long
# chunk runs faster alone than batched with others.
_SUB_BATCH_TOKENS, _SUB_BATCH_MAX = 512, 32


def _sub_batches(lengths: list[int]) -> list[list[int]]:
    """Input indices grouped for the encoder: sorted by length (little padding), each group within
    _SUB_BATCH_TOKENS padded tokens and _SUB_BATCH_MAX inputs (at least one input)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        group = groups[-1] if groups else None
        if group and len(group) < _SUB_BATCH_MAX and lengths[i] * (len(group) + 1) <= _SUB_BATCH_TOKENS:
            group.append(i)
        else:
            groups.append([i])
    return groups
