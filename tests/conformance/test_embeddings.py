"""POST /v1/embeddings through the official SDK, on the real default embedding model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openai
import pytest

from tests.spec import validate, wire

MODEL = "all-minilm-l6-v2"
REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "minilm_reference.json").read_text())


def test_single_string_matches_sentence_transformers(client) -> None:
    text = REFERENCE["texts"][0]
    out = client.embeddings.create(model=MODEL, input=text, encoding_format="float")
    validate("CreateEmbeddingResponse", wire(out))
    vec = np.array(out.data[0].embedding)
    assert vec.shape == (384,)
    assert np.allclose(vec, REFERENCE["embeddings"][0], atol=1e-5)
    assert out.usage.prompt_tokens == REFERENCE["token_counts"][0] == out.usage.total_tokens


def test_sdk_default_base64_round_trips_to_the_float_vectors(client) -> None:
    texts = REFERENCE["texts"][:3]
    default = client.embeddings.create(model=MODEL, input=texts)  # the SDK asks for base64
    floats = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    for a, b in zip(default.data, floats.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-7)
    raw = client.embeddings.with_raw_response.create(model=MODEL, input="x", encoding_format="base64")
    assert isinstance(raw.http_response.json()["data"][0]["embedding"], str)


def test_list_of_strings_order_and_usage(client) -> None:
    texts = REFERENCE["texts"]
    out = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert [d.index for d in out.data] == list(range(len(texts)))
    assert out.usage.prompt_tokens == sum(REFERENCE["token_counts"])
    got = np.array([d.embedding for d in out.data])
    assert np.allclose(got, REFERENCE["embeddings"], atol=1e-5)


def test_token_arrays(client) -> None:
    text_vec = client.embeddings.create(model=MODEL, input="hello world", encoding_format="float").data[0].embedding
    ids = [7592, 2088]  # "hello world" in this model's WordPiece vocabulary
    one = client.embeddings.create(model=MODEL, input=ids, encoding_format="float")
    many = client.embeddings.create(model=MODEL, input=[ids, ids[:1]], encoding_format="float")
    assert one.data[0].embedding == pytest.approx(text_vec, abs=1e-6)
    assert len(many.data) == 2 and many.usage.prompt_tokens == 3


def test_dimensions_truncates_and_renormalises(client) -> None:
    full = np.array(client.embeddings.create(model=MODEL, input="abc", encoding_format="float").data[0].embedding)
    short = np.array(
        client.embeddings.create(model=MODEL, input="abc", dimensions=64, encoding_format="float").data[0].embedding
    )
    assert short.shape == (64,)
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-6)


def test_dimensions_larger_than_model_is_400(client) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=MODEL, input="abc", dimensions=1024)
    assert err.value.body["param"] == "dimensions"


@pytest.mark.parametrize(("inputs", "says"), [([], "at least 1 item"), (["x"] * 2049, "at most 2048 items")])
def test_an_input_list_out_of_bounds_is_400_saying_why(client, inputs, says) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model=MODEL, input=inputs)
    assert err.value.body["param"] == "input"
    assert says in err.value.body["message"]  # not "should be a valid string", the union's first member


def test_semantic_similarity_is_meaningful(client) -> None:
    out = client.embeddings.create(
        model=MODEL,
        input=["A cat sits on the mat.", "A kitten is resting on a rug.", "Quarterly revenue grew by 4%."],
        encoding_format="float",
    )
    a, b, c = (np.array(d.embedding) for d in out.data)
    assert a @ b > a @ c + 0.3
