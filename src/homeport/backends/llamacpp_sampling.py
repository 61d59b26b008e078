"""Per-request samplers over llama.cpp's sampler chain, with a fast path for grammars.

A grammar sampler checks every candidate token against the grammar: over a 49k-token
vocabulary that halves decoding speed. Like llama.cpp's own `common_sampler`, the
constrained sampler first samples without the grammar and checks only the chosen token;
the whole vocabulary is filtered only when that token would break the grammar. The result
is a sample from the grammar-filtered distribution either way.
"""

from __future__ import annotations

import ctypes
import math
import random
from typing import Any

import numpy as np

from ..errors import InvalidRequest
from .base import SamplingParams

__all__ = ["Sampler", "build_sampler"]


class Sampler:
    """Unconstrained: the plain chain, sampled by llama.cpp in one call."""

    def __init__(self, chain: Any) -> None:
        self._chain = chain  # llama_cpp._internals.LlamaSampler (frees itself)

    def sample(self, ctx: Any, logits: np.ndarray) -> int:
        return int(self._chain.sample(ctx, -1))

    def close(self) -> None:
        return None


class _GrammarFirst(Sampler):
    def __init__(self, lib: Any, chain: Any, grammar: Any, n_vocab: int) -> None:
        from llama_cpp._internals import LlamaTokenDataArray

        super().__init__(chain)
        self._lib, self._grammar = lib, grammar
        self._all = LlamaTokenDataArray(n_vocab=n_vocab)
        self._one_data = (lib.llama_token_data * 1)()
        self._one = lib.llama_token_data_array(data=self._one_data, size=1, selected=-1, sorted=False)

    def sample(self, ctx: Any, logits: np.ndarray) -> int:
        lib, chain = self._lib, self._chain.sampler
        token = self._pick(chain, logits, constrained=False)
        self._one_data[0].id, self._one_data[0].logit, self._one_data[0].p = token, 0.0, 0.0
        self._one.size, self._one.sorted = 1, False
        lib.llama_sampler_apply(self._grammar, ctypes.byref(self._one))
        if math.isinf(self._one_data[0].logit):  # the favourite breaks the grammar: filter all
            token = self._pick(chain, logits, constrained=True)
        lib.llama_sampler_accept(self._grammar, token)
        lib.llama_sampler_accept(chain, token)
        return token

    def _pick(self, chain: Any, logits: np.ndarray, *, constrained: bool) -> int:
        self._all.copy_logits(logits)
        candidates = ctypes.byref(self._all.candidates)
        if constrained:
            self._lib.llama_sampler_apply(self._grammar, candidates)
        self._lib.llama_sampler_apply(chain, candidates)
        return int(self._all.candidates_data.id[self._all.candidates.selected])

    def close(self) -> None:
        if self._grammar:
            self._lib.llama_sampler_free(self._grammar)
            self._grammar = None


def build_sampler(lib: Any, vocab: Any, n_vocab: int, params: SamplingParams) -> Sampler:
    from llama_cpp._internals import LlamaSampler

    chain = LlamaSampler()
    if params.logit_bias:
        chain.add_logit_bias(n_vocab, params.logit_bias)
    if params.presence_penalty or params.frequency_penalty:
        chain.add_penalties(n_vocab, -1, 1.0, params.frequency_penalty, params.presence_penalty)
    if params.temperature == 0:
        chain.add_greedy()
    else:
        if params.top_p < 1.0:
            chain.add_top_p(params.top_p, 1)
        chain.add_temp(params.temperature)
        seed = params.seed if params.seed is not None else random.getrandbits(32)
        chain.add_dist(seed & 0xFFFFFFFF)
    if not params.grammar:
        return Sampler(chain)
    return _GrammarFirst(lib, chain, _grammar_sampler(lib, vocab, params.grammar, params.grammar_trigger), n_vocab)


def _grammar_sampler(lib: Any, vocab: Any, grammar: str, trigger: str | None) -> Any:
    if trigger is None:
        sampler = lib.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    else:
        patterns = (ctypes.c_char_p * 1)(trigger.encode())
        no_tokens = (lib.llama_token * 0)()
        sampler = lib.llama_sampler_init_grammar_lazy_patterns(
            vocab, grammar.encode(), b"root", patterns, 1, no_tokens, 0
        )
    if not sampler:  # llama.cpp could not parse it; using NULL would crash
        raise InvalidRequest("The output constraint could not be compiled into a grammar.")
    return sampler
