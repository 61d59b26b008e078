"""Continuous batching over llama.cpp's batch API: many sequences decoded together each step.

Each step builds one `llama_batch` holding the next token of every sequence that is generating,
plus up to `chunk` prompt tokens of sequences still reading their prompt (a long prompt is read
over several steps, so running streams keep going), calls `llama_decode` once, and samples each
sequence that produced logits with its own sampler (temperature, top_p, penalties, logit_bias,
seed, grammar: all per request).

One thread, the same for every engine in the process, runs the steps (`_Driver`): OpenMP gives
each thread that calls llama.cpp a team of its own, and once a process holds more OpenMP threads
than cores libgomp stops spinning at barriers, so every decode takes longer.

Sequences live in slots — llama.cpp sequence ids, each with its own KV stream (not one unified
cache: a sequence's logits are then the same whichever requests share the batch, so a seed gives
the same tokens at any concurrency). llama.cpp puts only consecutive sequence ids, in increasing
order, into one ubatch: so each step's batch lists its sequences in slot order, and a new request
takes the free slot that keeps the busy slots in the fewest runs; among those, the one whose
cache shares the longest prefix with its prompt. When another slot holds a longer one, that
slot's stream is copied over first, and a request whose prefix another sequence is still reading
waits for it rather than reading it too. Only the rest of the prompt is evaluated; the reused
count is reported as `usage.prompt_tokens_details.cached_tokens`. A cancelled request leaves its
slot at the next step; the slot's cache stays for the next prompt.

Starting from idle, the driver waits (at most 20 ms) while model requests are still on their way
to an engine (backends.base.Arrivals: received, not yet planned): requests that arrive together start
in one step, rather than the first alone while the event loop prepares the rest. With two or more
already waiting (a burst), it also waits a few milliseconds for the burst's last request to arrive.

Background sequences (batch lines: backends.base.background_work) take only what interactive ones
leave: an interactive request waiting at a step's start is admitted first, and if every slot is
busy, the background sequence with the least work done is preempted — it goes back to the front
of the queue with its sampler (grammar, penalties, random state) and the tokens it produced, and
later re-reads prompt + produced tokens (mostly from its slot's cache, if nobody overwrote it) and
goes on. So an interactive request waits at most one step for a batch.

What each of these choices measured, and the tests that hold them: docs/architecture.md
("The embedded llama.cpp engine").
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import EngineError, HomeportError
from ..base import Finish, GenerationRequest, Token, arrivals
from .budget import ClosingBudget
from .grammar import Grammar
from .sampling import Sampler, build_sampler

__all__ = ["BatchScheduler", "Sequence"]

Item = Token | Finish | BaseException


@dataclass(eq=False)
class Sequence:
    """One request inside the scheduler; its items go to `queue`, on the event loop `loop`."""

    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Item]
    cancel: threading.Event = field(default_factory=threading.Event)
    grammar: Grammar | None = None  # the request's constraint, compiled
    sampler: Sampler | None = None
    slot: _Slot | None = None
    todo: list[int] = field(default_factory=list)  # prompt tokens not evaluated yet
    feed: int | None = None  # the token sampled last step, evaluated this step
    produced: int = 0
    out_index: int = -1  # its logits' row in this step's batch, or -1
    background: bool = False  # yields its slot to interactive sequences (a batch line)
    generated: list[int] = field(default_factory=list)  # its sampled tokens: what a preempted one re-reads
    budget: ClosingBudget | None = None  # keeps a constrained output closable within max_tokens


@dataclass(eq=False)
class _Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)  # what this slot's KV stream holds, in order
    busy: bool = False
    freed_at: float = 0.0


class BatchScheduler:
    def __init__(
        self, lib: Any, model: Any, *, slots: int, context_length: int, chunk: int, threads: int,
        piece: Callable[[int], bytes], logprobs: Callable[[np.ndarray, int], tuple[np.ndarray, list]],
    ) -> None:  # fmt: skip
        self._lib = lib
        vocab = lib.llama_model_get_vocab(model)
        self._vocab, self._n_vocab = vocab, lib.llama_vocab_n_tokens(vocab)
        self._chunk, self._piece, self._logprobs = chunk, piece, logprobs
        params = lib.llama_context_default_params()
        params.n_ctx = context_length * slots  # each slot's stream gets n_ctx / n_seq_max
        params.n_seq_max = slots
        params.n_batch = params.n_ubatch = chunk + slots
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = False
        params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.no_perf = True
        self._ctx = lib.llama_init_from_model(model, params)
        if not self._ctx:
            raise EngineError("llama.cpp could not create a context (out of memory?)")
        self._memory = lib.llama_get_memory(self._ctx)
        self._batch = lib.llama_batch_init(chunk + slots, 0, 1)
        self._slots = [_Slot(i) for i in range(slots)]
        self._waiting: deque[Sequence] = deque()
        self._running: list[Sequence] = []
        self._cv = _DRIVER.cv  # guards _waiting and _closing
        self._closing: threading.Event | None = None
        self._outbox: list[tuple[Sequence, Item]] = []  # delivered once per step: one wake-up per loop
        # Read by metrics from other threads; written only by the driver thread.
        self.busy_seconds = 0.0
        self.steps = 0
        self.batch_tokens = 0
        self.generated_tokens = 0
        self.preemptions = 0
        _DRIVER.add(self)

    # ---- the event loop's side ---------------------------------------------------------------

    def submit(self, seq: Sequence) -> None:
        seq.request.info.queued_ns = time.time_ns()
        with self._cv:
            self._waiting.append(seq)
            self._cv.notify()

    def waiting(self) -> int:
        return len(self._waiting)

    def slots_busy(self) -> int:
        return sum(s.busy for s in self._slots)

    def close(self) -> None:
        """Fail what is running or waiting and free the context, on the driver thread."""
        closed = threading.Event()
        with self._cv:
            self._closing = closed
            self._cv.notify()
        closed.wait()

    # ---- the driver thread -------------------------------------------------------------------

    def _has_work(self) -> bool:  # with self._cv held
        return bool(self._running or self._waiting or self._closing)

    def _tick(self) -> None:
        """One step: admit waiting requests, decode, sample, hand the results out."""
        began = time.perf_counter()
        try:
            self._admit()
            self._step()
        except Exception as exc:  # the engine is in an unknown state: fail what runs, go on
            for seq in list(self._running):
                self._release(seq, EngineError(f"llama.cpp failed: {exc}"), drop_cache=True)
        finally:
            self._flush()
            self.busy_seconds += time.perf_counter() - began

    def _shut(self) -> None:
        with self._cv:
            pending, self._waiting = [*self._running, *self._waiting], deque()
        for seq in pending:
            self._emit(seq, EngineError("The engine is shutting down."))
            if seq.sampler is not None:
                seq.sampler.close()
        self._running = []
        self._flush()
        self._lib.llama_batch_free(self._batch)
        self._lib.llama_free(self._ctx)

    def _emit(self, seq: Sequence, item: Item) -> None:
        self._outbox.append((seq, item))

    def _flush(self) -> None:
        """Hand this step's items to their event loops: one call per loop, not one per token —
        every wake-up of the event loop thread takes a core from llama.cpp's threads mid-step."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Sequence, Item]]] = defaultdict(list)
        for seq, item in self._outbox:
            by_loop[seq.loop].append((seq, item))
        self._outbox = []
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    def _admit(self) -> None:
        for seq in [s for s in self._running if s.cancel.is_set()]:
            self._release(seq, None)
        while True:
            with self._cv:  # only this thread takes from the queue; submit() appends on the right
                if not self._waiting:
                    return
                seq = next((s for s in self._waiting if not s.background), self._waiting[0])
            if seq.cancel.is_set():
                self._take(seq)
                if seq.sampler is not None:  # preempted earlier
                    seq.sampler.close()
                continue
            free = [s for s in self._slots if not s.busy]
            if not free and (seq.background or not self._preempt()):
                return
            free = [s for s in self._slots if not s.busy]
            prompt = seq.request.prompt + seq.generated  # a preempted sequence re-reads what it produced
            prefix = {s.seq_id: _common_prefix(s.tokens, prompt) for s in self._slots}
            busy = [s.busy for s in self._slots]
            slot = max(free, key=lambda s: (-_runs(busy, s.seq_id), prefix[s.seq_id], -s.freed_at))
            donor = max(self._slots, key=lambda s: prefix[s.seq_id])
            have = max(prefix[slot.seq_id], prefix[donor.seq_id])
            if self._reading(prompt) >= have + _COPY_MIN:
                return  # a running sequence is reading this prefix: copy it once it has
            self._take(seq)
            try:
                if seq.sampler is None:
                    seq.sampler = build_sampler(self._lib, self._vocab, self._n_vocab, seq.request.sampling,
                                                seq.grammar)  # fmt: skip
            except HomeportError as exc:
                self._emit(seq, exc)
                continue
            if prefix[donor.seq_id] >= prefix[slot.seq_id] + _COPY_MIN:
                # The whole stream is copied at the start of the next llama_decode, before the
                # donor writes anything more; what lies past the shared prefix is cut below.
                self._lib.llama_memory_seq_cp(self._memory, donor.seq_id, slot.seq_id, -1, -1)
                slot.tokens = list(donor.tokens)
            else:
                have = prefix[slot.seq_id]
            keep = min(have, len(prompt) - 1)  # ≥ 1 token for fresh logits
            self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, keep, -1)
            del slot.tokens[keep:]
            slot.busy, seq.slot, seq.todo = True, slot, prompt[keep:]
            if not seq.generated:
                seq.request.info.cached_tokens = keep
                seq.request.info.started_ns = time.time_ns()
            self._running.append(seq)

    def _take(self, seq: Sequence) -> None:
        with self._cv:
            self._waiting.remove(seq)

    def _preempt(self) -> bool:
        """Free a slot held by a background sequence (the one with the least done) for an
        interactive one; the preempted sequence waits first in line, its slot's cache kept."""
        victims = [s for s in self._running if s.background]
        if not victims:
            return False
        seq = min(victims, key=lambda s: len(s.slot.tokens) if s.slot else 0)  # the cheapest to re-read
        assert seq.slot is not None
        seq.slot.busy, seq.slot.freed_at = False, time.monotonic()
        seq.slot, seq.todo, seq.feed, seq.out_index = None, [], None, -1
        self._running.remove(seq)
        with self._cv:
            self._waiting.appendleft(seq)
        self.preemptions += 1
        return True

    def _reading(self, prompt: list[int]) -> int:
        """The longest prefix of `prompt` that a running sequence has in its cache once it has
        read its own prompt."""
        return max(
            (_common_prefix(s.slot.tokens + s.todo, prompt) for s in self._running if s.todo and s.slot is not None),
            default=0,
        )

    def _step(self) -> None:
        if not self._running:
            return
        added: list[tuple[Sequence, list[int]]] = []  # what each sequence feeds this step
        budget = self._chunk
        for seq in self._running:  # the next token of every generating sequence; prompt chunks
            if seq.feed is not None:  # first come first served
                added.append((seq, [seq.feed]))
            elif seq.todo and budget > 0:
                added.append((seq, seq.todo[:budget]))
                budget -= len(added[-1][1])
        batch, n = self._batch, 0
        for seq in self._running:
            seq.out_index = -1
        for seq, tokens in sorted(added, key=lambda entry: _seq_id(entry[0])):  # in slot order (see above)
            assert seq.slot is not None
            logits = seq.feed is not None or len(tokens) == len(seq.todo)  # generating, or its prompt's end
            for i, token in enumerate(tokens):
                self._put(n, token, len(seq.slot.tokens) + i, seq.slot.seq_id, logits and i == len(tokens) - 1)
                n += 1
            if logits:
                seq.out_index = n - 1
        batch.n_tokens = n
        self._decode()
        self.steps += 1
        self.batch_tokens += n
        for seq, tokens in added:
            assert seq.slot is not None
            seq.slot.tokens += tokens
            if seq.todo:
                del seq.todo[: len(tokens)]
            seq.feed = None
        for seq in [s for s in self._running if s.out_index >= 0]:
            self._sample(seq)

    def _put(self, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
        batch.seq_id[i][0] = seq_id

    def _decode(self) -> None:
        rc = self._lib.llama_decode(self._ctx, self._batch)
        if rc != 0:
            # 1: no room in a KV stream (cannot happen while prompt + max_tokens fit the slot);
            # < 0: llama.cpp failed. Either way the batch's sequences cannot go on.
            raise EngineError(f"llama_decode returned {rc}")

    def _sample(self, seq: Sequence) -> None:
        assert seq.sampler is not None
        params = seq.request.sampling
        logits = np.ctypeslib.as_array(self._lib.llama_get_logits_ith(self._ctx, seq.out_index), shape=(self._n_vocab,))
        logprob, top = self._logprobs(logits, params.top_logprobs) if params.top_logprobs is not None else (None, None)
        token = seq.sampler.sample(self._ctx, logits, seq.out_index)
        if self._lib.llama_vocab_is_eog(self._vocab, token):
            self._release(seq, Finish("stop"))
            return
        piece = self._piece(token)
        if seq.budget is not None and not seq.budget.admits(piece, seq.produced + 1):
            # With this token the output could not be closed in the tokens left: close it instead.
            for forced in seq.budget.tokens():
                self._count(seq, forced)
                self._emit(seq, Token(forced, self._piece(forced), None if logprob is None else 0.0,
                                      None if top is None else []))  # fmt: skip
            self._release(seq, Finish("length"))
            return
        if not seq.produced:
            seq.request.info.first_token_ns = time.time_ns()
        self._count(seq, token)
        self._emit(seq, Token(token, piece, None if logprob is None else float(logprob[token]), top))
        if seq.produced >= params.max_tokens:
            self._release(seq, Finish("length"))
        else:
            seq.feed = token

    def _count(self, seq: Sequence, token: int) -> None:
        self.generated_tokens += 1
        seq.produced += 1
        seq.generated.append(token)

    def _release(self, seq: Sequence, last: Finish | BaseException | None, drop_cache: bool = False) -> None:
        if last is not None:
            self._emit(seq, last)
        if seq.sampler is not None:
            seq.sampler.close()
        slot = seq.slot
        if slot is not None:
            if drop_cache:
                self._lib.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
                slot.tokens.clear()
            slot.busy, slot.freed_at = False, time.monotonic()
        self._running.remove(seq)


class _Driver:
    """The one thread that runs every scheduler's steps, round robin (see the module docstring).
    Started with the first scheduler; a daemon, so it never holds the process open."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self._schedulers: list[BatchScheduler] = []
        self._thread: threading.Thread | None = None

    def add(self, scheduler: BatchScheduler) -> None:
        with self.cv:
            self._schedulers.append(scheduler)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="llamacpp-driver", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self.cv:
                while not any(s._has_work() for s in self._schedulers):
                    self.cv.wait()
                ready = [s for s in self._schedulers if s._has_work()]
            if not any(s._running for s in ready):
                _gather(ready)
            self._round(ready)
            del ready  # a closed scheduler is not kept alive here while this thread waits

    def _round(self, ready: list[BatchScheduler]) -> None:
        for scheduler in ready:
            if scheduler._closing is None:
                scheduler._tick()
                continue
            try:
                scheduler._shut()
            finally:
                with self.cv:
                    self._schedulers.remove(scheduler)
                scheduler._closing.set()


_DRIVER = _Driver()


def _gather(ready: list[BatchScheduler]) -> None:
    """Starting from idle: wait while requests are on their way (at most _GATHER_S in all). When
    several are already waiting (a burst), also wait _BURST_S for one more to come on its way:
    the last of a burst is often not yet read when the others are ready, and would start a whole
    step later (at 4 streams, one wave in three; bench/llama_server.py's TTFT p99)."""
    deadline = time.monotonic() + _GATHER_S
    arrivals.wait_for_none(_GATHER_S)
    while sum(len(s._waiting) for s in ready) >= 2 and (left := deadline - time.monotonic()) > 0:
        if not arrivals.wait_for_some(min(_BURST_S, left)):
            return
        arrivals.wait_for_none(max(0.0, deadline - time.monotonic()))


# Starting from idle, the driver waits up to this long while requests are still on their way to an
# engine: requests that arrive together then start in one step rather than the first alone and
# the rest a step later, while the event loop prepares them on cores the first step is using.
_GATHER_S = 0.02
_BURST_S = 0.004


def _deliver(items: list[tuple[Sequence, Item]]) -> None:
    for seq, item in items:
        seq.queue.put_nowait(item)


# A stream copy costs about what reading this many prompt tokens does (SmolLM2-135M, 8192-token
# streams, 2 cores: 26 ms against 126 ms for 40 tokens); below it, reading them is as cheap.
_COPY_MIN = 16


def _seq_id(seq: Sequence) -> int:
    assert seq.slot is not None
    return seq.slot.seq_id


def _runs(busy: list[bool], taking: int) -> int:
    """How many runs of consecutive busy slots there are once slot `taking` is busy too: the
    ubatches each step of the running sequences needs."""
    now = [b or i == taking for i, b in enumerate(busy)]
    return sum(b and (i == 0 or not now[i - 1]) for i, b in enumerate(now))


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.nonzero(np.asarray(a[:n]) != np.asarray(b[:n]))[0]
    return int(diff[0]) if diff.size else n
