"""A toxic-comment classifier in NumPy: a Keras BiLSTM's weights (h5py) and its word index.

The weights ship in the PyPI package `toxic-comment-classifier` 0.3.0 (MIT): an embedding of
20,000 words, a bidirectional LSTM of 50 units each way, max pooling over time, then two dense
layers, trained on the Jigsaw toxic-comment data. Its labels are toxic, severe_toxic, obscene,
threat, insult and identity_hate. The package declares TensorFlow (2.4 GB) to run them; this is
the same network in a few NumPy products, matching Keras' own outputs to 1e-7
(tests/unit/test_toxicity.py holds values Keras 3 produced).

The word index is a pickled Keras `Tokenizer`. It is read with an unpickler that builds only that
class (as a plain attribute holder), dicts and ints: a pickle can run code, and this one comes
from a package.
"""

from __future__ import annotations

import asyncio
import collections
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LABELS", "ToxicityClassifier", "ToxicityEngine"]

LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
_MAXLEN = 100  # the network was trained on the last 100 known words, left-padded with 0


class _Tokenizer:
    """Stands in for keras' Tokenizer: receives its attributes, nothing else."""


class _WordIndexUnpickler(pickle.Unpickler):
    _allowed: dict[tuple[str, str], Any] = {
        ("keras.src.legacy.preprocessing.text", "Tokenizer"): _Tokenizer,
        ("keras.preprocessing.text", "Tokenizer"): _Tokenizer,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("builtins", "int"): int,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing {module}.{name} in a tokenizer pickle") from None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class ToxicityClassifier:
    """texts → (n, 6) scores in [0, 1], one column per label in LABELS."""

    def __init__(self, model_dir: Path) -> None:
        import h5py  # only this backend needs it

        with open(model_dir / "tokenizer.pickle", "rb") as f:
            tokenizer = _WordIndexUnpickler(f).load()
        self._num_words = int(tokenizer.num_words)
        self._word_index = {w: i for w, i in tokenizer.word_index.items() if i < self._num_words}
        self._split = tokenizer.split
        self._filters = str.maketrans({c: tokenizer.split for c in tokenizer.filters})
        with h5py.File(model_dir / "model.weights.h5", "r") as h5:
            layers = h5["layers"]
            self._embedding = np.asarray(layers["embedding/vars/0"], dtype=np.float32)
            self._lstm = {
                d: tuple(np.asarray(layers[f"bidirectional/{d}_layer/cell/vars/{k}"], np.float32) for k in range(3))
                for d in ("forward", "backward")
            }
            self._dense = [
                tuple(np.asarray(layers[f"{name}/vars/{k}"], np.float32) for k in range(2))
                for name in ("dense", "dense_1")
            ]

    def word_ids(self, text: str) -> list[int]:
        """Keras' text_to_word_sequence + texts_to_sequences: lowercased, punctuation split, words
        outside the 20,000 most common dropped."""
        words = text.lower().translate(self._filters).split(self._split)
        return [i for w in words if w and (i := self._word_index.get(w)) is not None]

    def scores(self, texts: list[str]) -> np.ndarray:
        padded = np.zeros((len(texts), _MAXLEN), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.word_ids(text)[-_MAXLEN:]
            if ids:
                padded[row, -len(ids) :] = ids
        x = self._embedding[padded]
        forward = self._run_lstm(x, *self._lstm["forward"])
        backward = self._run_lstm(x[:, ::-1], *self._lstm["backward"])
        # Max pooling over time makes the backward pass's time order irrelevant.
        pooled = np.concatenate([forward.max(1), backward.max(1)], axis=1)
        (w1, b1), (w2, b2) = self._dense
        hidden = np.maximum(pooled @ w1 + b1, 0.0)
        return _sigmoid(hidden @ w2 + b2)

    @staticmethod
    def _run_lstm(x: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """Keras' LSTM cell, gates in its order (input, forget, cell, output)."""
        n, steps, _ = x.shape
        units = recurrent.shape[0]
        h = np.zeros((n, units), dtype=np.float32)
        c = np.zeros((n, units), dtype=np.float32)
        inputs = x @ kernel + bias  # all steps at once; only the recurrent product is sequential
        out = np.empty((n, steps, units), dtype=np.float32)
        for t in range(steps):
            z = inputs[:, t] + h @ recurrent
            i, f, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
            out[:, t] = h
        return out


class ToxicityEngine:
    """The classifier off the event loop: one worker thread (NumPy's BLAS uses the cores)."""

    def __init__(self, model_dir: Path) -> None:
        self._classifier = ToxicityClassifier(model_dir)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toxicity")

    def word_count(self, text: str) -> int:
        return len(self._classifier.word_ids(text))

    async def scores(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._classifier.scores, texts)

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
