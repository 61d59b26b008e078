"""The NumPy BiLSTM against the outputs Keras 3.15.1 (JAX backend) gave for the same weights."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest

from homeport.backends.toxicity import LABELS, ToxicityClassifier, _WordIndexUnpickler

# Keras' model.predict on the package's weights, rebuilt as its model.py builds it (see
# bench/moderation_reference.py, which needs keras + jax and is not part of the suite).
KERAS = {
    "Thanks for the help with the article!": [0.001292, 4e-06, 0.000331, 3e-06, 0.000273, 3.1e-05],
    "I will kill you, you stupid idiot!!": [0.995541, 0.27599, 0.865201, 0.092687, 0.905208, 0.142799],
    "Go back to your country; nobody wants your kind here.": [0.172344, 0.001423, 0.022991, 0.003603, 0.047711,
                                                              0.003161],
    "qwxz zzkq": [0.067534, 0.002373, 0.029382, 0.001006, 0.015355, 0.004006],  # no known word: all padding
    " ".join(["please improve the references and sources in this section"] * 15) + " you moron":
        [0.273751, 0.002706, 0.105422, 0.001169, 0.136297, 0.008761],  # 136 words: the last 100 count
}  # fmt: skip


@pytest.fixture(scope="module")
def classifier() -> ToxicityClassifier:
    spec = importlib.util.find_spec("toxic_classifier")
    assert spec is not None and spec.submodule_search_locations, "run ./run setup (toxic-comment-classifier)"
    return ToxicityClassifier(Path(next(iter(spec.submodule_search_locations))) / "model")


def test_scores_match_keras(classifier: ToxicityClassifier) -> None:
    got = classifier.scores(list(KERAS))
    assert got.shape == (len(KERAS), len(LABELS))
    assert np.allclose(got, np.array(list(KERAS.values())), atol=2e-6)


def test_one_at_a_time_equals_batched(classifier: ToxicityClassifier) -> None:
    texts = list(KERAS)
    batched = classifier.scores(texts)
    for i, text in enumerate(texts):
        assert np.allclose(classifier.scores([text])[0], batched[i], atol=1e-6)


def test_word_index_unpickler_refuses_anything_but_the_tokenizer() -> None:
    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            import os

            return (os.system, ("echo pwned",))

    import io

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _WordIndexUnpickler(io.BytesIO(pickle.dumps(Evil()))).load()
