"""The embedded chat engine: llama-cpp-python running a GGUF file in this process.

This first engine decodes one sequence at a time on a dedicated thread (llama.cpp contexts
are not thread safe). Requests queue FIFO behind it up to `queue_size`; past that the
engine answers EngineOverloaded (503 + Retry-After) instead of queueing forever. Closing a
generation's iterator (client gone, stop string found) stops its decode loop at the next
token. A continuous-batching scheduler can replace `_run` behind the same `generate`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import EngineError, EngineOverloaded, HomeportError
from ..settings import EngineSettings
from .base import Finish, GenerationRequest, Message, Token
from .llamacpp_sampling import build_sampler
from .templates import ChatTemplate

__all__ = ["LlamaCppEngine"]

_Emit = Callable[[Token | Finish | BaseException], None]


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
        self._llm = llama_cpp.Llama(
            str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
            n_batch=settings.batch_size, verbose=False,
        )  # fmt: skip
        self.context_length = self._llm.n_ctx()
        self._vocab = self._llm._model.vocab
        self._n_vocab = self.vocab_size = self._llm.n_vocab()
        meta = self._llm.metadata
        model = self._llm._model
        self._add_bos = model.add_bos_token()
        self._bos_text = self.token_piece(model.token_bos()).decode("utf-8", "replace")
        self._template = ChatTemplate(
            jinja_source=None if chat_template else meta.get("tokenizer.chat_template"),
            named=chat_template,
            bos=self._bos_text,
            eos=self.token_piece(model.token_eos()).decode("utf-8", "replace"),
        )
        self.fingerprint = _fingerprint(path, llama_cpp.__version__)
        self._queue_size = settings.queue_size
        self._retry_after = settings.retry_after_s
        self._jobs = 0  # running + waiting requests still wanted; touched only on the event loop
        self.busy_seconds = 0.0  # time the worker spent decoding; written only by the worker
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")

    # ---- tokens -------------------------------------------------------------------------

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def token_piece(self, token: int) -> bytes:
        return self._llm._model.detokenize([token], special=True)

    def apply_chat_template(self, messages: list[Message]) -> list[int]:
        text = self._template.render(messages)
        ids = self.tokenize(text, special=True)
        if self._add_bos and not text.startswith(self._bos_text):
            ids.insert(0, self._llm.token_bos())
        return ids

    # ---- generation ---------------------------------------------------------------------

    def queue_depth(self) -> int:
        return self._jobs

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token | Finish]:
        if self._jobs > self._queue_size:  # one running + queue_size waiting
            raise EngineOverloaded(
                "The local engine is busy and its queue is full; please retry shortly.",
                retry_after=self._retry_after,
            )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Token | Finish | BaseException] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Token | Finish | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        self._jobs += 1
        loop.run_in_executor(self._executor, self._run, request, emit, cancel)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, Finish):
                    return
        finally:
            # The single worker thread serialises engine access, so nothing waits here:
            # the loop sees the flag at its next token and the next job starts.
            cancel.set()
            self._jobs -= 1

    def _run(self, request: GenerationRequest, emit: _Emit, cancel: threading.Event) -> None:
        if cancel.is_set():
            return
        start = time.perf_counter()
        try:
            self._decode(request, emit, cancel)
        except HomeportError as exc:
            emit(exc)
        except Exception as exc:  # surfaced to the waiting request, not swallowed
            emit(EngineError(f"llama.cpp failed: {exc}"))
        finally:
            self.busy_seconds += time.perf_counter() - start

    def _decode(self, request: GenerationRequest, emit: _Emit, cancel: threading.Event) -> None:
        llm, params = self._llm, request.sampling
        prompt = request.prompt
        # Reuse the KV cache for the prefix shared with the previous request; re-evaluate at
        # least one token so the logits we sample from are fresh. A seeded request evaluates
        # its whole prompt: llama.cpp's logits differ in the last bits between a 1-token and
        # an n-token batch, enough to change a sample, and a seed promises the same output.
        keep = 0 if params.seed is not None else _common_prefix(llm.input_ids[: llm.n_tokens], prompt)
        llm.n_tokens = min(keep, len(prompt) - 1)
        pending = prompt[llm.n_tokens :]
        sampler = build_sampler(self._lib, self._vocab, self._n_vocab, params)
        try:
            for _ in range(params.max_tokens):
                if cancel.is_set():
                    return
                llm.eval(pending)
                logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(self._n_vocab,))
                want = params.top_logprobs
                logprob, top = self._logprobs(logits, want) if want is not None else (None, None)
                token = sampler.sample(llm._ctx, logits)
                if self._lib.llama_vocab_is_eog(self._vocab, token):
                    emit(Finish("stop"))
                    return
                lp = None if logprob is None else float(logprob[token])
                emit(Token(token, self._llm._model.detokenize([token]), lp, top))
                pending = [token]
            emit(Finish("length"))
        finally:
            sampler.close()

    def _logprobs(self, raw: np.ndarray, k: int) -> tuple[np.ndarray, list[tuple[bytes, float]]]:
        shifted = raw - raw.max()
        logprobs = shifted - np.log(np.exp(shifted).sum())
        if k == 0:
            return logprobs, []
        best = np.argpartition(-logprobs, k)[:k]
        best = best[np.argsort(-logprobs[best])]
        return logprobs, [(self.token_piece(int(i)), float(logprobs[i])) for i in best]

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._llm.close()


def _common_prefix(a: np.ndarray, b: list[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.nonzero(a[:n] != np.asarray(b[:n]))[0]
    return int(diff[0]) if diff.size else n


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
