"""Speech audio in the formats OpenAI serves: wav, pcm (raw 16-bit little-endian at 24 kHz, as
OpenAI's), mp3, opus (in Ogg), aac (ADTS) and flac, encoded in-process by PyAV (FFmpeg's codecs,
no ffmpeg binary). An `Encoder` takes PCM as it is synthesized and gives back the bytes ready to
send, so speech streams while the rest of the text is spoken."""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np

__all__ = ["MEDIA_TYPES", "Encoder"]

MEDIA_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
               "wav": "audio/wav", "pcm": "audio/pcm"}  # fmt: skip
_PCM_RATE = 24_000  # OpenAI's raw pcm is 24 kHz 16-bit mono
_AV = {"mp3": ("mp3", "libmp3lame", None), "opus": ("ogg", "libopus", 48_000), "aac": ("adts", "aac", None),
       "flac": ("flac", "flac", None)}  # fmt: skip


class _Sink(io.RawIOBase):
    """A write-only stream the muxer writes into; what it wrote is taken out after each feed."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)

    def take(self) -> bytes:
        out, self.data = bytes(self.data), bytearray()
        return out


class Encoder:
    def __init__(self, fmt: str, sample_rate: int) -> None:
        self.fmt, self._rate = fmt, sample_rate
        self._header_sent = False
        if fmt in _AV:
            import av

            container, codec, rate = _AV[fmt]
            self._sink = _Sink()
            self._out = av.open(self._sink, mode="w", format=container)
            self._stream: Any = self._out.add_stream(codec, rate=rate or sample_rate, layout="mono")
            context: Any = self._stream.codec_context
            self._resampler = av.AudioResampler(format=context.format.name, layout="mono",
                                                rate=rate or sample_rate)  # fmt: skip

    def feed(self, pcm: np.ndarray) -> bytes:
        """int16 mono PCM at the voice's rate → the bytes to send now."""
        if self.fmt == "pcm":
            return _resample(pcm, self._rate, _PCM_RATE).astype("<i2").tobytes()
        if self.fmt == "wav":
            head = b"" if self._header_sent else _wav_header(self._rate)
            self._header_sent = True
            return head + pcm.astype("<i2").tobytes()
        import av

        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        for resampled in self._resampler.resample(frame):
            for packet in self._stream.encode(resampled):
                self._out.mux(packet)
        return self._sink.take()

    def close(self) -> bytes:
        if self.fmt == "wav" and not self._header_sent:
            self._header_sent = True
            return _wav_header(self._rate)
        if self.fmt not in _AV:
            return b""
        for resampled in self._resampler.resample(None):
            for packet in self._stream.encode(resampled):
                self._out.mux(packet)
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        return self._sink.take()


def _wav_header(rate: int) -> bytes:
    """A streamed wav's header: the sizes are not known yet, so they say 'to the end' (0xFFFFFFFF),
    which players and decoders accept for a stream."""
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)  # PCM, mono, 16-bit
    return b"RIFF" + struct.pack("<I", unknown) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", unknown)


def _resample(pcm: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Linear interpolation: enough for speech between 22.05 and 24 kHz."""
    if rate == to or pcm.size == 0:
        return pcm
    n = int(round(pcm.size * to / rate))
    return np.interp(np.linspace(0, pcm.size - 1, n), np.arange(pcm.size), pcm.astype(np.float32)).astype(np.int16)
