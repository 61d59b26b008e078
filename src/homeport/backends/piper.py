"""Text to speech: a Piper voice (a VITS model in ONNX) on ONNX Runtime, phonemes from espeak-ng.

Why not the `piper-tts` package: it is GPL-3.0 (it links espeak-ng), and Homeport is Apache-2.0.
Here the voice's ONNX model runs on ONNX Runtime (MIT), and its phonemes come from the `espeak-ng`
program (Debian's package; GPL-3.0, run as a separate process, never linked), in IPA as Piper's
voices were trained on; each IPA symbol maps to the voice's ids (`phoneme_id_map` in its JSON),
padded as Piper pads them. Text is spoken sentence by sentence, so a caller can send the first
sentence's audio while the next is synthesized. docs/speech.md has the choice and its limits.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import EngineError, EngineOverloaded
from .niceness import nicer_thread, threads_started

__all__ = ["PiperVoice", "sentences"]

_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")
_MAX_SENTENCE_CHARS = 400  # a run-on text is cut at commas or spaces near this length


def sentences(text: str) -> list[str]:
    """The text cut where a listener hears a pause: sentence ends, then long runs at commas."""
    out = []
    for part in _SENTENCE.split(text):
        part = part.strip()
        while len(part) > _MAX_SENTENCE_CHARS:
            cut = max(part.rfind(",", 0, _MAX_SENTENCE_CHARS), part.rfind(" ", 0, _MAX_SENTENCE_CHARS))
            cut = cut if cut > 0 else _MAX_SENTENCE_CHARS
            out.append(part[: cut + 1].strip())
            part = part[cut + 1 :].strip()
        if part:
            out.append(part)
    return out


class PiperVoice:
    def __init__(self, model: Path, *, threads: int, queue_size: int, retry_after: int, nice: int = 0) -> None:
        import onnxruntime

        espeak = shutil.which("espeak-ng")
        if espeak is None:
            raise EngineError("text to speech needs the espeak-ng program (Debian: apt-get install espeak-ng)")
        self._espeak = espeak
        config = json.loads(Path(f"{model}.json").read_text())
        self.sample_rate: int = config["audio"]["sample_rate"]
        self._language = config.get("espeak", {}).get("voice", "en-us")
        self._ids: dict[str, list[int]] = config["phoneme_id_map"]
        inference = config.get("inference", {})
        self._noise, self._noise_w = inference.get("noise_scale", 0.667), inference.get("noise_w", 0.8)
        self._length = inference.get("length_scale", 1.0)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0
        with threads_started(nice):  # ONNX Runtime's pool, if it has one
            self._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper", initializer=nicer_thread(nice))
        self._queue_size, self._retry_after = queue_size, retry_after
        self._pending = 0

    def queue_depth(self) -> int:
        return self._pending

    async def speak(self, text: str, speed: float = 1.0) -> AsyncIterator[np.ndarray]:
        """int16 mono PCM at `sample_rate`, one array per sentence, each as soon as it is ready."""
        if self._pending >= 1 + self._queue_size:
            raise EngineOverloaded("The speech engine is busy; please retry shortly.", retry_after=self._retry_after)
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            for sentence in sentences(text):
                yield await loop.run_in_executor(self._executor, self._synthesize, sentence, speed)
        finally:
            self._pending -= 1

    def phonemes(self, sentence: str) -> str:
        """espeak-ng's IPA for one sentence (its clauses on lines, joined), ending in its punctuation."""
        out = subprocess.run([self._espeak, "-q", "--ipa", "-v", self._language, "--", sentence],
                             capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        clauses = [line.strip() for line in out.stdout.splitlines() if line.strip()]
        end = sentence.rstrip()[-1:] if sentence.rstrip()[-1:] in ".!?" else "."
        return ", ".join(clauses) + end

    def _synthesize(self, sentence: str, speed: float) -> np.ndarray:
        ids = self._ids["^"] + self._ids["_"]
        for symbol in self.phonemes(sentence):
            if symbol in self._ids:  # symbols the voice was not trained on are left out, as Piper does
                ids += self._ids[symbol] + self._ids["_"]
        ids += self._ids["$"]
        tokens = np.array([ids], dtype=np.int64)
        scales = np.array([self._noise, self._length / speed, self._noise_w], dtype=np.float32)
        audio = self._session.run(None, {"input": tokens, "input_lengths": np.array([tokens.shape[1]], dtype=np.int64),
                                         "scales": scales})[0].squeeze()  # fmt: skip
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        audio = audio * (0.9 / peak) if peak > 0.01 else audio  # Piper normalises each utterance so
        return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
