"""Speech on two cores: recognition speed and accuracy per model, synthesis speed, what audio work
does to chat decoding, and the memory the audio models add.

    .venv/bin/python bench/speech.py [--json bench/results/speech.json]

Test audio is Homeport's own speech (the Piper voice) of 8 sentences, and espeak-ng's (a second,
unrelated voice) of the same text; WER against the text. Then one server with the default chat
model and the speech models: chat output tok/s at 4 concurrent streams, alone and while a
transcription loops beside it; speech time to first byte and real-time factor. RSS: the server
with and without the audio models (`load_models`).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402
from tests.wer import wer  # noqa: E402

CHAT = "smollm2-135m-instruct"
AUDIO = ["whisper-base", "whisper-tiny-en", "piper-joe"]
TEXT = ("The harbour was quiet when the first ship came in. Seven sailors carried boxes of apples up the hill. "
        "A child counted them and laughed at the gulls. By noon the market was full of voices. The baker sold "
        "bread to the captain. Rain began to fall in the afternoon. Everyone hurried home before the storm. "
        "At night the lighthouse kept its steady watch.")  # fmt: skip
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


def _seconds(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as w:
        frames = w.getnframes()
        if frames in (0, 0x7FFFFFFF) or frames * w.getsampwidth() > len(wav):  # a streamed header
            frames = (len(wav) - 44) // w.getsampwidth()
        return frames / w.getframerate()


def speech(base: str) -> tuple[bytes, float, float]:
    """(wav, seconds to the first byte, real-time factor) of the whole text."""
    body = {"model": "tts-1", "voice": "alloy", "input": TEXT, "response_format": "wav"}
    start = time.perf_counter()
    first, parts = None, []
    with httpx.stream("POST", f"{base}/audio/speech", json=body, headers=HEADERS, timeout=600) as r:
        for chunk in r.iter_bytes():
            first = first or time.perf_counter() - start
            parts.append(chunk)
    total = time.perf_counter() - start
    audio = b"".join(parts)
    return audio, first or total, total / _seconds(audio)


def transcribe(base: str, model: str, audio: bytes) -> tuple[str, float]:
    start = time.perf_counter()
    r = httpx.post(f"{base}/audio/transcriptions", headers=HEADERS, files={"file": ("a.wav", audio)},
                   data={"model": model}, timeout=600)  # fmt: skip
    r.raise_for_status()
    return r.json()["text"], time.perf_counter() - start


async def chat_tok_s(base: str, streams: int = 4, tokens: int = 96) -> float:
    body = {"model": CHAT, "max_tokens": tokens, "temperature": 0.8,
            "messages": [{"role": "user", "content": "Tell a long story about the sea."}]}  # fmt: skip
    async with httpx.AsyncClient(timeout=600, headers=HEADERS) as http:
        start = time.perf_counter()
        answers = await asyncio.gather(*(http.post(f"{base}/chat/completions", json=body) for _ in range(streams)))
        seconds = time.perf_counter() - start
    return sum(a.json()["usage"]["completion_tokens"] for a in answers) / seconds


def _rss(server) -> float:  # type: ignore[no-untyped-def]
    text = httpx.get(f"{server.root}/metrics").text
    line = next(x for x in text.splitlines() if x.startswith("process_resident_memory_bytes"))
    return float(line.split()[-1]) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "speech.json")
    args = parser.parse_args()
    espeak = subprocess.run(["espeak-ng", "--stdout", TEXT], capture_output=True, check=True).stdout
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        bare = start_server(Path(tmp) / "bare", {"cache_enabled": False, "load_models": [CHAT]})
        rss_bare = _rss(bare)
        stop_server(bare)
        server = start_server(Path(tmp) / "full", {"cache_enabled": False, "load_models": [CHAT, *AUDIO]})
        try:
            base = server.base_url
            results["rss_mb"] = {"chat only": rss_bare, "chat + audio": _rss(server)}
            piper, ttfb, rtf = speech(base)
            speech(base)
            piper, ttfb, rtf = speech(base)  # warm
            results["speech"] = {"first_byte_s": ttfb, "rtf": rtf, "seconds": _seconds(piper)}
            results["asr"] = {}
            for model in ("whisper-tiny-en", "whisper-base"):
                for voice, audio in (("piper", piper), ("espeak-ng", espeak)):
                    transcribe(base, model, audio)  # warm
                    text, seconds = transcribe(base, model, audio)
                    results["asr"][f"{model} / {voice}"] = {"wer": wer(TEXT, text), "rtf": seconds / _seconds(audio),
                                                            "text": text}  # fmt: skip
            asyncio.run(chat_tok_s(base))  # warm
            alone = asyncio.run(chat_tok_s(base))
            stop = threading.Event()

            def loop() -> None:
                while not stop.is_set():
                    transcribe(base, "whisper-base", piper)

            beside = threading.Thread(target=loop)
            beside.start()
            time.sleep(1.0)
            busy = asyncio.run(chat_tok_s(base))
            stop.set()
            beside.join()
            results["chat_tok_s_4_streams"] = {"alone": alone, "with a transcription running": busy}
        finally:
            stop_server(server)
    print(f"\n{'recognition (model / voice)':34} {'WER':>6} {'RTF':>6}")
    for name, r in results["asr"].items():
        print(f"{name:34} {r['wer']:>6.3f} {r['rtf']:>6.3f}")
    s = results["speech"]
    print(f"\nspeech: {s['seconds']:.1f} s of audio, first byte after {s['first_byte_s']:.2f} s, RTF {s['rtf']:.3f}")
    c = results["chat_tok_s_4_streams"]
    print(f"chat tok/s at 4 streams: alone {c['alone']:.1f}, with a transcription running "
          f"{c['with a transcription running']:.1f}")  # fmt: skip
    m = results["rss_mb"]
    print(f"RSS: chat only {m['chat only']:.0f} MB, chat + audio {m['chat + audio']:.0f} MB "
          f"(+{m['chat + audio'] - m['chat only']:.0f} MB)")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
