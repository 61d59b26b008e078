"""Decoding uploaded audio (backends/whisper.py): the same samples as faster-whisper's own decoder,
and audio whose container does not say how long it is stops decoding at the length limit."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest

from homeport.backends.whisper import _decode, decode_audio
from homeport.errors import InvalidRequest


def _encode(fmt: str, codec: str, rate: int, seconds: float, silent: bool = False) -> bytes:
    import av

    samples = int(rate * seconds)
    t = np.arange(samples) / rate
    wave = np.zeros(samples) if silent else 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    pcm = (wave * 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        step = rate  # one second a frame
        for start in range(0, samples, step):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + step], format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _unknown_length(flac: bytes) -> bytes:
    """The FLAC with STREAMINFO's total-samples field 0: "not known", as a streaming encoder writes it."""
    data, info = bytearray(flac), 8  # STREAMINFO's data follows "fLaC" and a 4-byte block header
    data[info + 13] &= 0xF0
    data[info + 14 : info + 18] = bytes(4)
    return bytes(data)


@pytest.mark.parametrize(("fmt", "codec", "rate"), [("wav", "pcm_s16le", 22050), ("flac", "flac", 44100),
                                                    ("mp3", "mp3", 24000), ("ogg", "libopus", 48000)])  # fmt: skip
def test_the_samples_are_faster_whispers(fmt: str, codec: str, rate: int) -> None:
    from faster_whisper.audio import decode_audio as theirs

    data = _encode(fmt, codec, rate, 3.5)
    ours = _decode(data, max_seconds=60)
    assert ours.dtype == np.float32 and abs(ours.size - 3.5 * 16_000) < 16_000 * 0.1
    np.testing.assert_array_equal(ours, theirs(io.BytesIO(data), sampling_rate=16_000))


def test_audio_of_unknown_length_stops_decoding_at_the_limit() -> None:
    import av

    hours = _unknown_length(_encode("flac", "flac", 8000, 2 * 3600, silent=True))  # two hours of silence
    with av.open(io.BytesIO(hours)) as container:
        assert container.duration is None  # nothing to refuse it by before decoding
    assert len(hours) < 2_000_000  # 25 MB of it, the upload limit, would hold 37 hours
    tracemalloc.start()
    try:
        with pytest.raises(InvalidRequest, match="longer than 10 minutes") as err:
            decode_audio(hours, max_seconds=600)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.param == "file"
    # Ten minutes at 16 kHz in 16 bits is 19 MB; two hours would be 230 MB (faster-whisper's decoder).
    assert peak < 60_000_000, peak
    short = _unknown_length(_encode("flac", "flac", 8000, 5))
    assert abs(decode_audio(short, max_seconds=600).size - 5 * 16_000) < 1600
