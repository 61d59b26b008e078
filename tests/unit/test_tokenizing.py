"""Long prompts with many special tokens are tokenized in pieces (backends/llamacpp/tokenizing.py):
the ids must be llama.cpp's for the whole text, and the cuts must respect llama.cpp's own split."""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path

import llama_cpp
import pytest

from homeport.backends.llamacpp.engine import _special_tokens
from homeport.backends.llamacpp.tokenizing import SpecialPieces
from homeport.services.inference.registry import locate_weights
from homeport.settings import DEFAULT_MODELS


@pytest.fixture(scope="module")
def vocab() -> llama_cpp.Llama:
    path = locate_weights(DEFAULT_MODELS[0], Path("/nonexistent"))
    return llama_cpp.Llama(str(path), vocab_only=True, verbose=False)


def _texts(specials: list[bytes], rng: random.Random) -> list[bytes]:
    """Texts built from special tokens, their halves (so that a token forms across two parts, or
    only nearly), whitespace, words and multi-byte characters."""
    parts = [*specials, *(s[: len(s) // 2] for s in specials), *(s[len(s) // 2 :] for s in specials),
             b" ", b"\n", b"\n\n", b"  ", b"\t", b"user", b"assistant", b"<", b"|>", b"<|", b"hello world",
             "caf\u00e9 \u65e5\u672c".encode(), b"x"]  # fmt: skip
    return [b"".join(rng.choice(parts) for _ in range(rng.randint(1, 400))) for _ in range(300)]


def test_pieces_tokenize_to_the_ids_of_the_whole_text(vocab: llama_cpp.Llama) -> None:
    specials = _special_tokens(llama_cpp, vocab._model.vocab, vocab.n_vocab())
    assert b"<|im_start|>" in specials and len(specials) > 10
    tokenize = partial(vocab.tokenize, add_bos=False, special=True)
    cut = 0
    for per_piece in (1, 2, 5):
        pieces = SpecialPieces(specials, per_piece=per_piece, shortest=0)
        for text in _texts(list(specials), random.Random(per_piece)):
            assert pieces.tokenize(text, tokenize) == tokenize(text), text
            cut += len(pieces.pieces(text)) > 1
    assert cut > 600  # most texts were cut somewhere


def test_a_chat_transcript_is_cut_every_few_turns(vocab: llama_cpp.Llama) -> None:
    specials = _special_tokens(llama_cpp, vocab._model.vocab, vocab.n_vocab())
    text = "".join(f"<|im_start|>user\nturn {i}<|im_end|>\n" for i in range(5000)).encode()
    pieces = SpecialPieces(specials).pieces(text)
    assert b"".join(pieces) == text
    assert len(pieces) > 500 and max(p.count(b"<|") for p in pieces) <= 17  # 16 special tokens a piece
    tokenize = partial(vocab.tokenize, add_bos=False, special=True)
    assert SpecialPieces(specials).tokenize(text, tokenize) == tokenize(text)
    short = text[:1000]
    assert SpecialPieces(specials).pieces(short) == [short]  # short texts go whole


@pytest.mark.parametrize(
    ("text", "cut"),
    [
        (b"ab<X>cd<X>ef", True),
        (b"ab <X>cd", True),  # whitespace before a token that keeps it
        (b"ab <L>cd", False),  # ... and before one that strips it (lstrip)
        (b"ab <W>cd", False),  # the cut's token starts with whitespace
        (b"<A>C<X>.", True),
        (b"<A>B<X>.", False),  # "A>B<" is longer than "<X>", is matched first and spans the cut
        (b"aQ<X>b", False),  # "Q<X" is matched first at the cut, but "<X>", as long, overlaps it
        (b"a<Xb", False),  # no special token at all
    ],
)
def test_cuts_only_where_llama_cpp_splits_too(text: bytes, cut: bool) -> None:
    specials = {b"<X>": False, b"<L>": True, b" <W>": False, b"<A>": False, b"A>B<": False, b"Q<X": False}
    pieces = SpecialPieces(specials, per_piece=0, shortest=0).pieces(text)
    assert b"".join(pieces) == text
    assert (len(pieces) > 1) == cut, pieces
