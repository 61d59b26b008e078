"""The embedded chat engine: llama-cpp-python running a GGUF file in this process.

Generation goes through `batching.BatchScheduler`: up to `engine.slots` requests decode together,
one llama.cpp batch per step, each with its own sampler. Requests beyond the slots wait FIFO up to
`queue_size`; past that the engine answers EngineOverloaded (503 + Retry-After) instead of queueing
for ever. Closing a generation's iterator (client gone, stop string found) frees its slot at the
next step.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import EngineOverloaded, InvalidRequest
from ...settings import EngineSettings
from ..base import Finish, GenerationRequest, Message, Token, is_background
from ..closing import Closer
from .batching import BatchScheduler, Sequence
from .budget import ClosingBudget
from .grammar import compile_constraint
from .templates import ChatTemplate
from .tokenizing import SpecialPieces

__all__ = ["LlamaCppEngine"]


class LlamaCppEngine:
    def __init__(
        self,
        path: Path,
        *,
        settings: EngineSettings,
        context_length: int | None = None,
        chat_template: str | None = None,
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        threads = settings.threads or os.cpu_count() or 1
        probe = _read_train_context(path)
        n_ctx = context_length or min(probe, 8192)
        # The Llama object is for the model, tokenizer and metadata; its own context stays tiny.
        # Generation runs in the scheduler's context (`n_ctx` tokens per slot).
        self._llm = llama_cpp.Llama(str(path), n_ctx=16, n_batch=16, n_threads=1, verbose=False)
        self.context_length = n_ctx
        self._vocab = self._llm._model.vocab
        self._n_vocab = self.vocab_size = self._llm.n_vocab()
        meta = self._llm.metadata
        model = self._llm._model
        self._special_pieces = SpecialPieces(_special_tokens(llama_cpp, self._vocab, self._n_vocab))
        self._add_bos = model.add_bos_token()
        self.eos_token = model.token_eos()
        self._bos_text = self.token_piece(model.token_bos()).decode("utf-8", "replace")
        self._template = ChatTemplate(
            jinja_source=None if chat_template else meta.get("tokenizer.chat_template"),
            named=chat_template,
            bos=self._bos_text,
            eos=self.token_piece(self.eos_token).decode("utf-8", "replace"),
        )
        self.fingerprint = _fingerprint(path, llama_cpp.__version__)
        self._slots, self._queue_size = settings.slots, settings.queue_size
        self._retry_after = settings.retry_after_s
        # The scheduler gets functions of the model, not of this engine: no reference cycle, so an
        # unloaded engine is freed at once (api/server.py freezes start-up's objects out of the collector).
        self.scheduler = BatchScheduler(
            llama_cpp, model.model, slots=settings.slots, context_length=self.context_length,
            chunk=settings.batch_size, threads=threads, piece=partial(_detokenize, model),
            logprobs=partial(_logprobs, model),
        )  # fmt: skip

    def stats(self) -> dict[str, float]:
        """For /metrics (metrics._EngineCollector) and the tests."""
        s = self.scheduler
        return {"busy_seconds": s.busy_seconds, "generated_tokens": s.generated_tokens, "decode_steps": s.steps,
                "batch_tokens": s.batch_tokens, "slots_busy": s.slots_busy(), "queue_depth": s.waiting(),
                "preemptions": s.preemptions}  # fmt: skip

    # ---- tokens -------------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        data = text.encode("utf-8")
        if not special:
            return self._llm.tokenize(data, add_bos=False, special=False)
        return self._special_pieces.tokenize(data, partial(self._llm.tokenize, add_bos=False, special=True))

    def token_piece(self, token: int) -> bytes:
        return _detokenize(self._llm._model, token, special=True)

    def apply_chat_template(self, messages: list[Message]) -> list[int]:
        text = self._template.render(messages)
        ids = self.tokenize(text, special=True)
        if self._add_bos and not text.startswith(self._bos_text):
            ids.insert(0, self._llm.token_bos())
        return ids

    # ---- generation ---------------------------------------------------------------------

    def queue_depth(self) -> int:
        """Requests running or waiting."""
        return self.scheduler.slots_busy() + self.scheduler.waiting()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token | Finish]:
        if request.sampling.max_tokens <= 0:  # e.g. legacy completions' echo with max_tokens=0
            yield Finish("length")
            return
        if self.scheduler.slots_busy() + self.scheduler.waiting() >= self._slots + self._queue_size:
            raise EngineOverloaded(
                "The local engine is busy and its queue is full; please retry shortly.",
                retry_after=self._retry_after,
            )
        constraint = request.sampling.constraint
        grammar = compile_constraint(constraint) if constraint is not None else None
        budget = None
        if constraint is not None:
            budget = ClosingBudget(Closer(constraint), self._closing_tokens, request.sampling.max_tokens)
            cost = budget.cost()
            if cost is not None and cost > request.sampling.max_tokens:
                raise InvalidRequest(f"max_tokens ({request.sampling.max_tokens}) is too small for this output format: "
                                     f"its shortest valid output takes {cost} tokens.", param="max_tokens")  # fmt: skip
        queue: asyncio.Queue[Token | Finish | BaseException] = asyncio.Queue()
        seq = Sequence(request, asyncio.get_running_loop(), queue, grammar=grammar, background=is_background(),
                       budget=budget)  # fmt: skip
        self.scheduler.submit(seq)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Finish):
                    return
        finally:
            seq.cancel.set()  # the scheduler frees the slot at its next step

    def _closing_tokens(self, text: str) -> list[int] | None:
        """Tokens that spell exactly `text` (a closing; see budget.py), or None. Tried after a `{` too:
        some tokenizers add a space before a text's first word."""
        data = text.encode()
        for prefix in (b"", b"{"):
            head = self._llm.tokenize(prefix, add_bos=False, special=False) if prefix else []
            ids = self._llm.tokenize(prefix + data, add_bos=False, special=False)
            if ids[: len(head)] == head and b"".join(self._piece(t) for t in ids[len(head) :]) == data:
                return ids[len(head) :]
        return None

    def _piece(self, token: int) -> bytes:
        return _detokenize(self._llm._model, token)

    async def close(self) -> None:
        await asyncio.to_thread(self.scheduler.close)
        self._llm.close()


def _detokenize(model: Any, token: int, special: bool = False) -> bytes:
    """A token's bytes; special tokens spelled out only if `special` (else empty, as generated).
    `model`: llama_cpp's LlamaModel."""
    return bytes(model.detokenize([token], special=special))


def _logprobs(model: Any, raw: np.ndarray, k: int) -> tuple[np.ndarray, list[tuple[bytes, float]]]:
    shifted = raw - raw.max()
    logprobs = shifted - np.log(np.exp(shifted).sum())
    if k == 0:
        return logprobs, []
    best = np.argpartition(-logprobs, k)[:k]
    best = best[np.argsort(-logprobs[best])]
    return logprobs, [(_detokenize(model, int(i), special=True), float(logprobs[i])) for i in best]


def _read_train_context(path: Path) -> int:
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False):  # the probe's context warns about its own size
        probe = Llama(str(path), vocab_only=True, verbose=False)
    try:
        meta = probe.metadata
        arch = meta.get("general.architecture", "llama")
        return int(meta.get(f"{arch}.context_length", 2048))
    finally:
        probe.close()


def _fingerprint(path: Path, engine_version: str) -> str:
    digest = hashlib.sha256(engine_version.encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
    digest.update(str(path.stat().st_size).encode())
    return "fp_" + digest.hexdigest()[:10]


def _special_tokens(lib: Any, vocab: Any, n_vocab: int) -> dict[bytes, bool]:
    """The texts llama.cpp splits a prompt at before tokenizing it (control, user-defined and
    unknown tokens), each with whether it strips the whitespace before it."""
    special = lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_USER_DEFINED | lib.LLAMA_TOKEN_ATTR_UNKNOWN
    out: dict[bytes, bool] = {}
    for token in range(n_vocab):
        attr = lib.llama_vocab_get_attr(vocab, token)
        if attr & special:
            text = lib.llama_vocab_get_text(vocab, token)
            out[text] = out.get(text, False) or bool(attr & lib.LLAMA_TOKEN_ATTR_LSTRIP)
    return out
