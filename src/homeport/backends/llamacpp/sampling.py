"""Per-request samplers: NumPy for plain temperature/top_p, llama.cpp's sampler chain otherwise,
with a fast path for grammars.

With continuous batching every running sequence samples between two decode steps, on the one
driver thread, while the cores wait. llama.cpp's chain copies the 49k-entry vocabulary into a
candidate array and softmaxes it per sample; the NumPy path reads the logits in place and
exponentiates only the tokens that can matter (`_Plain`). On AMD Zen 1 (bench/sampler.py, µs a
sample at temperature 0.8 / with top_p 0.9): llama.cpp's chain 611 / 907, NumPy over the whole
vocabulary 282 / 362 (np.exp alone 183: no AVX-512 there), NumPy over the likely tokens 127 / 187.
Requests with penalties, logit_bias or a grammar use the chain.

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

from ...errors import InvalidRequest
from ..base import SamplingParams
from .grammar import Grammar

__all__ = ["Sampler", "build_sampler"]


class Sampler:
    """Unconstrained: the plain chain, sampled by llama.cpp in one call."""

    def __init__(self, lib: Any, chain: Any) -> None:
        self._lib, self._chain = lib, chain  # chain: llama_cpp._internals.LlamaSampler (frees itself)

    def sample(self, ctx: Any, logits: np.ndarray, index: int) -> int:
        """The next token from `logits`, row `index` of the last batch's outputs in `ctx` (a llama_context_p)."""
        return int(self._lib.llama_sampler_sample(self._chain.sampler, ctx, index))

    def close(self) -> None:
        return None


class _Plain(Sampler):
    """Greedy, or temperature then nucleus (top_p), drawn with the request's own seeded RNG.

    Exact, without exponentiating the whole vocabulary: only the tokens within `_TAIL`
    temperatures of the top logit are weighed (a few percent of them at temperature 0.8); each of
    the rest weighs less than e^-16 of the top token, so their mass is at most `bound`, a few
    thousandths of the total. A draw over the weighed mass plus `bound` lands in the weighed part
    nearly always; when it lands in the bound, the whole vocabulary is weighed and the draw is
    finished so that every token's probability is exactly its softmax share (`_rest`). At a high
    temperature, when a quarter of the vocabulary or more is near the top, it is all weighed in one
    pass instead (`_whole`)."""

    def __init__(self, temperature: float, top_p: float, seed: int | None) -> None:
        self._temperature, self._top_p = temperature, top_p
        self._rng = np.random.default_rng(seed)
        self._weights: np.ndarray | None = None

    def sample(self, ctx: Any, logits: np.ndarray, index: int) -> int:
        if self._temperature == 0:
            return int(np.argmax(logits))
        top = logits.max()
        near = logits >= top - np.float32(_TAIL * self._temperature)
        if np.count_nonzero(near) > len(logits) * _DENSE:  # much of the vocabulary matters (a high temperature)
            return self._whole(logits, top)
        likely = np.flatnonzero(near)
        weights = np.exp((logits[likely] - top) * np.float32(1.0 / self._temperature))
        # Every other token weighs less than e^-_TAIL (with a margin for float32 rounding).
        bound = (len(logits) - len(likely)) * math.exp(-_TAIL) * (1 + 1e-3)
        if self._top_p < 1.0:  # the total lies between held and held + bound
            held = float(weights.sum(dtype=np.float64))
            picked = self._nucleus(weights, held, held + bound)
            return int(likely[picked]) if picked is not None else self._whole(logits, top)
        sums = np.cumsum(weights, dtype=np.float64)  # a few thousand: cheaper than by blocks
        held = float(sums[-1])
        target = self._rng.random() * (held + bound)
        if target < held:
            return int(likely[_search(sums, target)])
        return self._rest(logits, top, likely, sums, (target - held) / bound, bound)

    def _nucleus(self, weights: np.ndarray, low: float, high: float, floor: float = 1e-5) -> int | None:
        """top_p: a draw among the fewest most likely tokens whose mass reaches top_p of the
        total, which lies between `low` and `high`; where both give the same cut, it is exact
        (else None). Only the tokens above `floor` of `low` are sorted: every token below it is
        less likely than all of them, so when their mass reaches top_p the cut is theirs."""
        most = np.flatnonzero(weights >= low * floor)
        order = most[np.argsort(-weights[most], kind="stable")]
        cumulative = np.cumsum(weights[order], dtype=np.float64)
        cut = int(np.searchsorted(cumulative, self._top_p * low)) + 1
        if cut != int(np.searchsorted(cumulative, self._top_p * high)) + 1:
            return None  # the mass not weighed decides the cut
        if cut > len(cumulative):
            if floor:
                return None  # the tokens below the floor are needed too
            cut = len(cumulative)  # every token, a rounding short of top_p of the total: all of them
        pick = np.searchsorted(cumulative[:cut], self._rng.random() * cumulative[cut - 1], side="right")
        return int(order[min(int(pick), cut - 1)])

    def _all_weights(self, logits: np.ndarray, top: np.float32) -> np.ndarray:
        """exp((logits - top) / T) for the whole vocabulary, in place in a kept buffer."""
        if self._weights is None or self._weights.shape != logits.shape:
            self._weights = np.empty(logits.shape, dtype=np.float32)
        weights = self._weights
        np.subtract(logits, top, out=weights)
        np.multiply(weights, np.float32(1.0 / self._temperature), out=weights)
        np.exp(weights, out=weights)
        return weights

    def _rest(
        self, logits: np.ndarray, top: np.float32, likely: np.ndarray, held_sums: np.ndarray, u: float, bound: float
    ) -> int:
        """The draw landed in `bound` (at `u` of it, uniform in [0, 1)). The rest's true mass
        `rest` is at most `bound`; so far each weighed token was drawn with probability
        w / (held + bound), each other token never. Finishing the draw with weights
        w·(bound − rest) for the weighed tokens and w·(held + bound) for the others makes every
        token's probability w / (held + rest): its softmax share."""
        weights = self._all_weights(logits, top)
        weights[likely] = 0.0  # the rest alone
        sums = _block_sums(weights)
        held, rest = float(held_sums[-1]), float(sums[-1])
        bound = max(bound, rest)  # only a float rounding could make it less
        target = u * bound * (held + rest)
        if target < held * (bound - rest):
            return int(likely[_search(held_sums, target / (bound - rest))])
        return _draw(weights, sums, (target - held * (bound - rest)) / (held + bound))

    def _whole(self, logits: np.ndarray, top: np.float32) -> int:
        """A draw over the whole vocabulary, weighed in one pass."""
        weights = self._all_weights(logits, top)
        sums = _block_sums(weights)
        total = float(sums[-1])
        if self._top_p >= 1.0:
            return _draw(weights, sums, self._rng.random() * total)
        picked = self._nucleus(weights, total, total)
        if picked is None:  # the tokens above the floor did not reach top_p: sort them all
            picked = self._nucleus(weights, total, total, floor=0.0)
        assert picked is not None  # with the total known, the cut is decided
        return picked


# The tokens weighed one by one: those within _TAIL temperatures of the top logit. Below it, a
# token weighs < e^-16 ≈ 1.1e-7 of the top one: over 49,152 tokens at most 0.55% of the total.
_TAIL = 16.0
# Above this share of the vocabulary near the top, weighing it all in one pass is cheaper than
# picking the likely tokens out first.
_DENSE = 1 / 4


def _search(sums: np.ndarray, target: float) -> int:
    """The index where the running sum `sums` passes `target` (the last, should a rounding put
    `target` at the total)."""
    return min(int(np.searchsorted(sums, target, side="right")), len(sums) - 1)


_BLOCK = 256


def _block_sums(weights: np.ndarray) -> np.ndarray:
    """Running sums (float64) of `weights` by blocks of _BLOCK, the ragged tail last: the total is
    the last. One float32 pass: a float64 sum or cumsum over the whole vocabulary costs more than
    the rest of a sample together."""
    n = len(weights) - len(weights) % _BLOCK
    blocks = weights[:n].reshape(-1, _BLOCK).sum(axis=1)
    if n < len(weights):
        blocks = np.append(blocks, weights[n:].sum())
    return np.cumsum(blocks, dtype=np.float64)


def _draw(weights: np.ndarray, sums: np.ndarray, target: float) -> int:
    """The index where the running sum of `weights` passes `target`: the block first (`sums` from
    _block_sums), then the running sum inside it."""
    b = int(np.searchsorted(sums, target, side="right"))
    if b >= len(sums):  # rounding put target at the total: the last block that holds any weight
        b = int(np.flatnonzero(np.diff(sums, prepend=0.0))[-1])
    start, before = b * _BLOCK, float(sums[b - 1]) if b else 0.0
    inside = np.cumsum(weights[start : start + _BLOCK], dtype=np.float64)
    i = int(np.searchsorted(inside, target - before, side="right"))
    if i >= len(inside):  # past the block's float64 sum by a rounding: its last token that can be drawn
        i = int(np.flatnonzero(weights[start : start + _BLOCK])[-1])
    return start + i


class _GrammarFirst(Sampler):
    def __init__(self, lib: Any, chain: Any, grammar: Any, n_vocab: int) -> None:
        from llama_cpp._internals import LlamaTokenDataArray

        super().__init__(lib, chain)
        self._grammar = grammar
        self._all = LlamaTokenDataArray(n_vocab=n_vocab)
        self._one_data = (lib.llama_token_data * 1)()
        self._one = lib.llama_token_data_array(data=self._one_data, size=1, selected=-1, sorted=False)

    def sample(self, ctx: Any, logits: np.ndarray, index: int) -> int:
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


def build_sampler(
    lib: Any, vocab: Any, n_vocab: int, params: SamplingParams, grammar: Grammar | None = None
) -> Sampler:
    """The sampler of one request; `grammar` is its constraint compiled (compile_constraint)."""
    from llama_cpp._internals import LlamaSampler

    if not (grammar or params.logit_bias or params.presence_penalty or params.frequency_penalty):
        return _Plain(params.temperature, params.top_p, params.seed)

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
    if not grammar:
        return Sampler(lib, chain)
    return _GrammarFirst(lib, chain, _grammar_sampler(lib, vocab, grammar.text, grammar.trigger), n_vocab)


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
