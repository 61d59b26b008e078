"""Speech: text → audio in the asked format, streamed sentence by sentence (or as
`speech.audio.delta` events)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ...backends.piper import PiperVoice
from ...errors import InvalidRequest, UnsupportedParameter
from ...protocol.audio import SpeechRequest
from ..inference.registry import ModelRegistry
from .encode import MEDIA_TYPES, Encoder

__all__ = ["SpeechService"]


@dataclass
class _Plan:
    request: SpeechRequest
    voice: PiperVoice

    @property
    def characters(self) -> int:
        return len(self.request.input)

    @property
    def media_type(self) -> str:
        return "text/event-stream" if self.request.stream_format == "sse" else MEDIA_TYPES[self.request.response_format]


class SpeechService:
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def plan(self, request: SpeechRequest) -> _Plan:
        cfg, voice = self._registry.speech(request.model)
        if not request.input.strip():
            raise InvalidRequest("'input' is empty: there is nothing to say.", param="input")
        name = request.voice if isinstance(request.voice, str) else request.voice.id
        if name not in cfg.voices:
            raise InvalidRequest(f"Unknown voice '{name}'; this model speaks as {', '.join(cfg.voices)}.",
                                 param="voice")  # fmt: skip
        if request.instructions:
            raise UnsupportedParameter("instructions", "This server's voices cannot follow speaking instructions.")
        return _Plan(request, voice)

    async def audio(self, plan: _Plan) -> AsyncIterator[bytes]:
        """The encoded audio, a piece per sentence as soon as it is spoken."""
        encoder = Encoder(plan.request.response_format, plan.voice.sample_rate)
        async for pcm in plan.voice.speak(plan.request.input, plan.request.speed):
            if chunk := encoder.feed(pcm):
                yield chunk
        if tail := encoder.close():
            yield tail

    async def events(self, plan: _Plan) -> AsyncIterator[dict[str, Any]]:
        """`speech.audio.delta` events (base64 audio), then `speech.audio.done` with usage."""
        async for chunk in self.audio(plan):
            yield {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}
        n = plan.characters
        yield {"type": "speech.audio.done", "usage": {"input_tokens": n, "output_tokens": 0, "total_tokens": n}}
