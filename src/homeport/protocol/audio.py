"""`/v1/audio/*` wire types: transcriptions and translations (multipart forms), speech (JSON)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from .common import Request, Wire

__all__ = ["SpeechRequest", "Transcription", "TranscriptionForm", "TranscriptionSegment", "TranscriptionWord",
           "VerboseTranscription"]  # fmt: skip

MAX_AUDIO_BYTES = 25 * 1024 * 1024  # OpenAI's limit on an uploaded audio file


class TranscriptionForm(Request):
    """The form fields of POST /v1/audio/transcriptions and /v1/audio/translations (beside `file`)."""

    model: str
    language: str | None = None
    prompt: str | None = None
    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] = "json"
    temperature: Annotated[float, Field(ge=0, le=1)] = 0.0
    timestamp_granularities: list[Literal["word", "segment"]] = Field(default_factory=lambda: ["segment"])  # type: ignore[arg-type]
    stream: bool = False
    include: list[str] = Field(default_factory=list)


class TranscriptionWord(BaseModel):
    word: str
    start: float
    end: float


class TranscriptionSegment(BaseModel):
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float


class DurationUsage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: int


class Transcription(Wire):
    text: str
    usage: DurationUsage | None = None


class VerboseTranscription(Wire):
    task: Literal["transcribe", "translate"]
    language: str
    duration: float
    text: str
    segments: list[TranscriptionSegment] | None = None
    words: list[TranscriptionWord] | None = None
    usage: DurationUsage | None = None


class _VoiceId(Request):
    id: str


class SpeechRequest(Request):
    model: str
    input: Annotated[str, Field(max_length=4096)]
    voice: str | _VoiceId
    instructions: Annotated[str, Field(max_length=4096)] | None = None
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: Annotated[float, Field(ge=0.25, le=4.0)] = 1.0
    stream_format: Literal["sse", "audio"] = "audio"
