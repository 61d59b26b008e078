"""Transcriptions and translations: an uploaded audio file → text, in OpenAI's five formats or as
streamed `transcript.text.delta` events."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...backends.whisper import SAMPLE_RATE, Segment, Transcript, WhisperEngine, decode_audio
from ...errors import InvalidRequest
from ...protocol.audio import (
    DurationUsage,
    Transcription,
    TranscriptionForm,
    TranscriptionSegment,
    TranscriptionWord,
    VerboseTranscription,
)
from ..inference.registry import ModelRegistry

__all__ = ["TranscriptionService"]

MAX_SECONDS = 2 * 3600
"""Longer audio is refused (decoded audio is 64 KB a second in memory; two hours is 460 MB); the
container's declared length is checked before decoding."""

# Whisper's language codes and the names OpenAI answers with in verbose_json (the common ones;
# others answer with their code).
_NAMES = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
          "nl": "dutch", "ru": "russian", "zh": "chinese", "ja": "japanese", "ko": "korean", "ar": "arabic",
          "hi": "hindi", "pl": "polish", "tr": "turkish", "sv": "swedish", "uk": "ukrainian", "cs": "czech",
          "fi": "finnish", "da": "danish", "no": "norwegian", "el": "greek", "he": "hebrew"}  # fmt: skip
_MEDIA = {"json": "application/json", "verbose_json": "application/json", "text": "text/plain; charset=utf-8",
          "srt": "text/plain; charset=utf-8", "vtt": "text/vtt; charset=utf-8"}  # fmt: skip


@dataclass
class _Plan:
    form: TranscriptionForm
    task: str
    engine: WhisperEngine
    audio: np.ndarray

    @property
    def seconds(self) -> int:
        """Billed seconds, as OpenAI's usage reports them (rounded up)."""
        return max(1, math.ceil(self.audio.size / SAMPLE_RATE))


class TranscriptionService:
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    async def plan(self, form: TranscriptionForm, data: bytes, task: str) -> _Plan:
        cfg, engine = self._registry.transcription(form.model)
        if task == "translate" and not cfg.multilingual:
            raise InvalidRequest(f"`{form.model}` knows English only; translations need a multilingual model "
                                 "such as whisper-1.", param="model")  # fmt: skip
        language = _language(form.language, cfg.multilingual)
        if form.stream and form.response_format not in ("json", "text"):
            raise InvalidRequest("Streaming answers in the json or text format only.", param="response_format")
        if "word" in form.timestamp_granularities and form.response_format != "verbose_json":
            raise InvalidRequest("timestamp_granularities needs response_format verbose_json.",
                                 param="timestamp_granularities")  # fmt: skip
        if form.include:
            raise InvalidRequest("This server's speech models give no logprobs.", param="include",
                                 code="unsupported_parameter")  # fmt: skip
        audio = await asyncio.to_thread(decode_audio, data, MAX_SECONDS)
        form.language = language
        return _Plan(form, task, engine, audio)

    async def run(self, plan: _Plan) -> Transcript:
        form = plan.form
        return await plan.engine.transcribe(plan.audio, task=plan.task, language=form.language, prompt=form.prompt,
                                            temperature=form.temperature,
                                            words="word" in form.timestamp_granularities)  # fmt: skip

    def render(self, plan: _Plan, transcript: Transcript) -> tuple[str, str]:
        """(body, media type) in the asked format."""
        fmt, usage = plan.form.response_format, DurationUsage(seconds=plan.seconds)
        if fmt == "text":
            return transcript.text + "\n", _MEDIA[fmt]
        if fmt == "srt":
            return _subtitles(transcript.segments, ","), _MEDIA[fmt]
        if fmt == "vtt":
            return "WEBVTT\n\n" + _subtitles(transcript.segments, ".", numbered=False), _MEDIA[fmt]
        if fmt == "json":
            return Transcription(text=transcript.text, usage=usage).model_dump_json(), _MEDIA[fmt]
        granular = plan.form.timestamp_granularities
        verbose = VerboseTranscription(
            task="translate" if plan.task == "translate" else "transcribe",
            language=_NAMES.get(transcript.language, transcript.language), duration=transcript.duration,
            text=transcript.text, usage=usage,
            segments=[_segment(s) for s in transcript.segments] if "segment" in granular else None,
            words=[TranscriptionWord(word=w.word, start=w.start, end=w.end) for s in transcript.segments
                   for w in s.words] if "word" in granular else None,
        )  # fmt: skip
        return verbose.model_dump_json(), _MEDIA[fmt]

    async def stream(self, plan: _Plan) -> AsyncIterator[dict[str, Any]]:
        """`transcript.text.delta` per segment as it is recognised, then `transcript.text.done`."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Queue[Segment | None] = asyncio.Queue()
        form = plan.form
        work = asyncio.ensure_future(plan.engine.transcribe(
            plan.audio, task=plan.task, language=form.language, prompt=form.prompt, temperature=form.temperature,
            words=False, on_segment=lambda s: loop.call_soon_threadsafe(ready.put_nowait, s)))  # fmt: skip
        work.add_done_callback(lambda _: ready.put_nowait(None))
        try:
            while (segment := await ready.get()) is not None:
                yield {"type": "transcript.text.delta", "delta": segment.text}
            transcript = await work  # raises what the engine raised
        finally:
            work.cancel()
        # The done event's usage is in tokens (OpenAI's spec allows no other kind here): audio tokens
        # are Whisper's encoder positions, 50 a second; output tokens are the text tokens decoded.
        audio = round(plan.audio.size / SAMPLE_RATE * 50)
        text = sum(len(s.tokens) for s in transcript.segments)
        yield {"type": "transcript.text.done", "text": transcript.text,
               "usage": {"type": "tokens", "input_tokens": audio, "output_tokens": text, "total_tokens": audio + text,
                         "input_token_details": {"audio_tokens": audio, "text_tokens": 0}}}  # fmt: skip


def _language(language: str | None, multilingual: bool) -> str | None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if language is None or language == "":
        return None if multilingual else "en"
    code = language.lower()
    if code not in _LANGUAGE_CODES:
        raise InvalidRequest(f"Language '{language}' is not an ISO-639-1 code Whisper knows.", param="language")
    if not multilingual and code != "en":
        raise InvalidRequest("This model knows English only; use a multilingual model such as whisper-1.",
                             param="language")  # fmt: skip
    return code


def _segment(s: Segment) -> TranscriptionSegment:
    return TranscriptionSegment(id=s.id, seek=int(s.start * 100), start=s.start, end=s.end, text=s.text,
                                tokens=s.tokens, temperature=s.temperature, avg_logprob=s.avg_logprob,
                                compression_ratio=s.compression_ratio, no_speech_prob=s.no_speech_prob)  # fmt: skip


def _subtitles(segments: list[Segment], comma: str, numbered: bool = True) -> str:
    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{comma}{ms % 1000:03d}"

    blocks = [(f"{i}\n" if numbered else "") + f"{stamp(s.start)} --> {stamp(s.end)}\n{s.text.strip()}\n"
              for i, s in enumerate(segments, start=1)]  # fmt: skip
    return "\n".join(blocks)
