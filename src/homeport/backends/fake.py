"""Deterministic engines for fast tests of everything above the engine seam (never the default).

The chat engine's tokens are UTF-8 bytes (id = byte value); it answers with words chosen by
a hash of the prompt and seed, and ends its turn after `reply_tokens` tokens. Under a constraint
that requires tool calls it calls the first tool with empty arguments, after a newline (the
grammar allows a few, and real models write them); under a JSON answer constraint (and no
tools) it answers `{}`. With tools offered (auto), a prompt holding `SAY_THEN_CALL` and no tool
result yet gets a sentence and then that call, as a real model often answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator

import numpy as np

from .base import Finish, GenerationRequest, Message, SamplingParams, Token
from .constraints import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

__all__ = ["SAY_THEN_CALL", "FakeChatEngine", "FakeEmbeddingEngine"]

SAY_THEN_CALL = "(say something, then call a tool)"

_WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


class FakeChatEngine:
    fingerprint = "fp_fake000000"
    vocab_size = 256

    def __init__(self, context_length: int = 2048, reply_tokens: int = 24, delay_s: float = 0.0) -> None:
        self.context_length = context_length
        self._reply_tokens = reply_tokens
        self._delay_s = delay_s

    def tokenize(self, text: str, *, special: bool) -> list[int]:
        return list(text.encode("utf-8"))

    def token_piece(self, token: int) -> bytes:
        return bytes([token])

    def apply_chat_template(self, messages: list[Message]) -> list[int]:
        text = "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant: "
        return self.tokenize(text, special=True)

    def reply(self, prompt: list[int], seed: int | None) -> bytes:
        digest = hashlib.sha256(bytes(prompt) + str(seed).encode()).digest()
        count = max(len(digest), self._reply_tokens // 2)  # words of 2+ letters: enough for the reply
        words = " ".join(_WORDS[digest[i % len(digest)] % len(_WORDS)] for i in range(count))
        return words.encode()[: self._reply_tokens]

    def _constrained(self, prompt: list[int], params: SamplingParams) -> bytes | None:
        constraint = params.constraint
        if constraint is None:
            return None
        if constraint.tools:
            call = json.dumps({"name": constraint.tools[0].name, "arguments": {}})
            call = f"{TOOL_CALL_OPEN}\n{call}\n{TOOL_CALL_CLOSE}"
            if constraint.calls == "required":
                return f"\n{call}".encode()
            text = bytes(prompt)
            if constraint.calls == "auto" and SAY_THEN_CALL.encode() in text and b"<tool_response>\n" not in text:
                return f"Let me check.\n{call}".encode()
            return None
        return b"{}" if constraint.answer is not None else None

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Token | Finish]:
        params = request.sampling
        request.info.queued_ns = request.info.started_ns = time.time_ns()  # no queue: taken at once
        reply = self._constrained(request.prompt, params) or self.reply(request.prompt, params.seed)
        for i, byte in enumerate(reply[: params.max_tokens]):
            if i == 0:
                request.info.first_token_ns = time.time_ns()
            if self._delay_s:
                await asyncio.sleep(self._delay_s)
            piece = bytes([byte])
            if params.top_logprobs is None:
                yield Token(byte, piece)
            else:
                yield Token(byte, piece, -0.1, [(piece, -0.1)][: params.top_logprobs])
        yield Finish("length" if len(reply) > params.max_tokens else "stop")

    async def close(self) -> None:
        return None


class FakeEmbeddingEngine:
    dimensions = 16
    max_tokens = 256
    vocab_size = 256

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [list(t.encode("utf-8")) for t in texts]

    async def embed(self, batch: list[list[int]]) -> np.ndarray:
        out = np.empty((len(batch), self.dimensions), dtype=np.float32)
        for i, ids in enumerate(batch):
            digest = hashlib.sha256(bytes(ids)).digest()
            vec = np.frombuffer(digest[: self.dimensions], dtype=np.uint8).astype(np.float32) - 127.5
            out[i] = vec / (math.sqrt(float((vec**2).sum())) or 1.0)
        return out

    async def close(self) -> None:
        return None
