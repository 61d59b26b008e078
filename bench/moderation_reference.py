"""Keras' own outputs for the toxicity network, the reference tests/unit/test_toxicity.py holds.

    pip install keras jax h5py   # in a separate environment: not Homeport's dependencies
    KERAS_BACKEND=jax python bench/moderation_reference.py

Rebuilds the network as toxic-comment-classifier's model.py does, loads the package's weights,
and prints each text's six scores; the word ids come from Homeport's tokenizer port, so the
comparison covers the network (the port's tokenizer follows keras' Tokenizer, whose behaviour
the unit test's texts exercise: punctuation, unknown words, truncation to the last 100).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
from keras.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, GlobalMaxPooling1D, Input  # noqa: E402

from homeport.backends.toxicity import ToxicityClassifier  # noqa: E402
from tests.unit.test_toxicity import KERAS  # noqa: E402


def main() -> None:
    spec = importlib.util.find_spec("toxic_classifier")
    assert spec is not None and spec.submodule_search_locations
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    inp = Input(shape=(100,))
    x = Embedding(input_dim=20000, output_dim=50)(inp)
    x = Bidirectional(LSTM(50, return_sequences=True))(x)
    x = GlobalMaxPooling1D()(x)
    x = Dense(50, activation="relu")(x)
    x = Dropout(0.1)(x)
    model = keras.models.Model(inp, Dense(6, activation="sigmoid")(x))
    model.load_weights(model_dir / "model.weights.h5")
    port = ToxicityClassifier(model_dir)
    padded = np.zeros((len(KERAS), 100), dtype=np.int64)
    for row, text in enumerate(KERAS):
        ids = port.word_ids(text)[-100:]
        if ids:
            padded[row, -len(ids) :] = ids
    for text, scores in zip(KERAS, model.predict(padded, verbose=0), strict=True):
        print(repr(text[:60]), [round(float(v), 6) for v in scores])


if __name__ == "__main__":
    main()
