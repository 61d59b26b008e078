"""The engine seam: what a chat engine and an embedding engine promise the services.

A chat engine turns prompt token ids into sampled tokens. Text assembly, stop strings,
choices and wire shapes live above it (services), so a continuous-batching scheduler can
replace the first one-sequence-at-a-time engine without touching routes or services.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

import numpy as np

from .constraints import OutputConstraint

__all__ = [
    "SamplingParams",
    "GenerationRequest",
    "GenerationInfo",
    "Token",
    "Finish",
    "ChatEngine",
    "EmbeddingEngine",
    "Message",
    "background_work",
    "is_background",
    "arrivals",
    "prepared",
]

T = TypeVar("T")

_INLINE_CHARS = 8_192
"""Inputs up to this many characters are templated and tokenized on the event loop (a few
milliseconds at most); longer ones in a worker thread."""


async def prepared(work: Callable[[], T], chars: int) -> T:
    """`work()`: the CPU work of reading one request's input (rendering its chat template,
    tokenizing it) for an input of `chars` characters. A large input is prepared in a worker
    thread, so the event loop goes on serving every other request meanwhile: on the loop, 400,000
    words took 1.4 s to tokenize and held every other stream for as long. The tokenizers release
    the GIL while they run (llama.cpp through ctypes, HF `tokenizers` in Rust)."""
    if chars <= _INLINE_CHARS:
        return work()
    return await asyncio.to_thread(work)

_BACKGROUND: ContextVar[bool] = ContextVar("homeport_background_generation", default=False)


@contextmanager
def background_work() -> Iterator[None]:
    """Generations started inside (a batch line) yield to interactive requests: an engine that
    schedules gives them only the slots interactive requests leave free, and takes a slot back
    when an interactive request would otherwise wait."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


def is_background() -> bool:
    return _BACKGROUND.get()


class Arrivals:
    """How many model requests the server has received and not yet handed to an engine (reading,
    parsing, authorising, planning and tokenising them on the event loop). A scheduler about to
    start from idle waits a moment while any are on their way, so requests that arrive together
    start in one step (backends/llamacpp/batching.py). Process-wide, as that scheduler's driver
    thread is."""

    _COUNTED, _READING, _SETTLED = range(3)  # a request's states; only the first is counted

    def __init__(self) -> None:
        self._none = threading.Condition()  # notified whenever the count changes
        self._count = 0
        self._current: ContextVar[list[int] | None] = ContextVar("homeport_arrival", default=None)

    def pending(self) -> int:
        return self._count

    def wait_for_none(self, timeout: float) -> None:
        """Returns once no request is on its way, or after `timeout` seconds."""
        with self._none:
            self._none.wait_for(lambda: self._count == 0, timeout)

    def wait_for_some(self, timeout: float) -> bool:
        """Whether a request came on its way within `timeout` seconds."""
        with self._none:
            return self._none.wait_for(lambda: self._count > 0, timeout)

    @contextmanager
    def arriving(self) -> Iterator[Callable[[bool], None]]:
        """Counts the request handled inside until `handed_over()` or the end. Yields `reading`, to
        call with whether more of its body is still to come: a slow upload is not counted meanwhile."""
        state = [self._READING]
        self._move(state, self._COUNTED)
        token = self._current.set(state)
        try:
            yield lambda more: self._move(state, self._READING if more else self._COUNTED)
        finally:
            self._current.reset(token)
            self._move(state, self._SETTLED)

    def handed_over(self) -> None:
        """The current request goes to its engine now (nothing, outside `arriving`)."""
        state = self._current.get()
        if state is not None:
            self._move(state, self._SETTLED)

    def _move(self, state: list[int], to: int) -> None:
        with self._none:
            if state[0] == self._SETTLED:
                return
            change = (to == self._COUNTED) - (state[0] == self._COUNTED)
            self._count += change
            state[0] = to
            if change:
                self._none.notify_all()


arrivals = Arrivals()


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    top_logprobs: int | None = None
    """None: no logprobs. 0..20: the sampled token's logprob plus that many alternatives."""
    constraint: OutputConstraint | None = None
    """What the output must be (structured outputs, tool calls), as JSON Schema: each engine
    compiles it into its own mechanism (backends/constraints.py)."""


@dataclass
class GenerationInfo:
    """What the engine reports about a generation beside its tokens."""

    cached_tokens: int = 0
    """Prompt tokens whose KV cache was reused rather than evaluated (prefix caching)."""
    queued_ns: int = 0
    """When the engine took the request (time.time_ns); 0 if it does not say (tracing's spans)."""
    started_ns: int = 0
    """When a slot took it: the prompt's reading (prefill) begins."""
    first_token_ns: int = 0
    """When its first token was sampled: prefill done, decoding begins."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt: list[int]
    sampling: SamplingParams
    info: GenerationInfo = field(default_factory=GenerationInfo)


@dataclass(frozen=True)
class Token:
    """One sampled token. `piece` is raw bytes: a token may hold part of a UTF-8 character."""

    id: int
    piece: bytes
    logprob: float | None = None
    top: list[tuple[bytes, float]] | None = None


@dataclass(frozen=True)
class Finish:
    """Last item of a generation: `stop` (end-of-turn token) or `length` (max_tokens)."""

    reason: Literal["stop", "length"]


@dataclass(frozen=True)
class Message:
    """A chat message as templates see it: plain role and text."""

    role: str
    content: str


class ChatEngine(Protocol):
    """A loaded chat model. Implementations: `llamacpp.LlamaCppEngine`, `fake.FakeChatEngine`."""

    context_length: int
    vocab_size: int
    fingerprint: str

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        """Token ids of `text`; `special` parses control tokens such as `<|im_start|>`."""
        ...

    def token_piece(self, token: int) -> bytes:
        """The bytes a token id stands for (for echo and logprobs)."""
        ...

    def apply_chat_template(self, messages: list[Message]) -> list[int]:
        """The prompt ids for a conversation, ending where the assistant's turn begins."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[Token | Finish]:
        """Sample tokens until end of turn or max_tokens; closing the iterator cancels the work.

        Raises EngineOverloaded when its queue is full.
        """
        ...

    async def close(self) -> None: ...


class EmbeddingEngine(Protocol):
    dimensions: int
    max_tokens: int
    vocab_size: int

    def tokenize(self, texts: list[str]) -> list[list[int]]: ...

    async def embed(self, batch: list[list[int]]) -> np.ndarray:
        """Unit vectors, shape (len(batch), dimensions)."""
        ...

    async def close(self) -> None: ...
