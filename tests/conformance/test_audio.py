"""/v1/audio/* through the official SDK on the packaged models: Whisper base and tiny.en
(faster-whisper) and the Piper voice (ONNX Runtime + espeak-ng). Speech made by the TTS is the ASR's
input, so each round trip checks both."""

from __future__ import annotations

import io
import json
import time
import wave

import httpx
import openai
import pytest

from tests.conftest import API_KEY, create_key, start_server, stop_server
from tests.spec import validate
from tests.wer import wer

MODELS = ["whisper-base", "whisper-tiny-en", "piper-joe"]
TEXT = "The lighthouse keeper counted seven ships before the storm. Then the harbour lights went out."


@pytest.fixture(scope="module")
def audio_server(tmp_path_factory: pytest.TempPathFactory):  # -> Server
    server = start_server(tmp_path_factory.mktemp("audio"), {"load_models": MODELS, "cache_enabled": False,
                                                             "vector_store_model": "all-minilm-l6-v2"})  # fmt: skip
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def client(audio_server):  # -> openai.OpenAI
    with openai.OpenAI(base_url=audio_server.base_url, api_key=API_KEY, max_retries=0, timeout=300) as c:
        yield c


@pytest.fixture(scope="module")
def spoken(client) -> bytes:
    return client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="wav").content


def test_speech_round_trip_through_transcription(client, spoken: bytes) -> None:
    with wave.open(io.BytesIO(spoken)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
    out = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", spoken))
    validate("CreateTranscriptionResponseJson", out.model_dump(exclude_none=True))
    assert wer(TEXT, out.text) <= 0.25, out.text  # stated bound: docs/speech.md
    assert out.usage.seconds >= 3


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "pcm"])
def test_every_speech_format_decodes_back_to_speech(client, fmt: str) -> None:
    audio = client.audio.speech.create(model="tts-1", voice="nova", input="Seven ships before the storm.",
                                       response_format=fmt).content  # fmt: skip
    assert len(audio) > 1000
    if fmt != "pcm":  # raw pcm has no container to decode
        text = client.audio.transcriptions.create(model="whisper-tiny-en", file=(f"s.{fmt}", audio)).text
        assert wer("Seven ships before the storm.", text) <= 0.4, text  # tiny.en hears "chips" now and then


def test_transcription_formats(client, spoken: bytes) -> None:
    text = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", spoken), response_format="text")
    assert isinstance(text, str) and "lighthouse" in text.lower()
    srt = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", spoken), response_format="srt")
    assert srt.startswith("1\n00:00:00,") and " --> " in srt
    vtt = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", spoken), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:")
    verbose = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", spoken),
                                                 response_format="verbose_json",
                                                 timestamp_granularities=["word", "segment"])  # fmt: skip
    raw = verbose.model_dump(exclude_none=True)
    validate("CreateTranscriptionResponseVerboseJson", raw)
    assert raw["language"] == "english" and raw["duration"] > 3
    assert raw["segments"][0]["start"] >= 0 and raw["segments"][-1]["end"] <= raw["duration"] + 0.5
    words = raw["words"]
    assert len(words) >= 10 and all(a["start"] <= b["start"] for a, b in zip(words, words[1:], strict=False))


def test_streamed_transcription_events(client, spoken: bytes) -> None:
    events = list(client.audio.transcriptions.create(model="whisper-1", file=("a.wav", spoken), stream=True))
    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done" and types[:-1] and set(types[:-1]) == {"transcript.text.delta"}
    done = events[-1]
    assert "".join(e.delta for e in events[:-1]).strip() == done.text
    validate("TranscriptTextDoneEvent", done.model_dump(exclude_none=True))


def test_translation_to_english(client) -> None:
    import subprocess

    german = subprocess.run(["espeak-ng", "-v", "de", "--stdout", "Guten Morgen. Das Wetter ist heute sehr schön."],
                            capture_output=True, check=True).stdout  # fmt: skip
    heard = client.audio.transcriptions.create(model="whisper-1", file=("de.wav", german),
                                               response_format="verbose_json")  # fmt: skip
    assert heard.language == "german"
    out = client.audio.translations.create(model="whisper-1", file=("de.wav", german))
    validate("CreateTranslationResponseJson", out.model_dump(exclude_none=True))
    assert "good morning" in out.text.lower(), out.text  # Whisper base on espeak's robotic German: the rest varies
    with pytest.raises(openai.BadRequestError) as err:  # tiny.en knows English only
        client.audio.translations.create(model="whisper-tiny-en", file=("de.wav", german))
    assert err.value.body["param"] == "model"


def test_speech_streams_before_the_text_is_done(client, audio_server) -> None:
    long_text = " ".join(f"Sentence number {i} is spoken while the next one is still being made." for i in range(12))
    started = time.perf_counter()
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="echo", input=long_text,
                                                            response_format="mp3") as response:  # fmt: skip
        chunks = response.iter_bytes()
        first = next(chunks)
        first_at = time.perf_counter() - started
        total = len(first) + sum(len(c) for c in chunks)
        whole = time.perf_counter() - started
    assert first and total > len(first)
    assert first_at < whole / 2, (first_at, whole)  # the first sentence came well before the end
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {"model": "tts-1", "voice": "alloy", "input": "Hello there. Goodbye now.", "stream_format": "sse",
            "response_format": "pcm"}  # fmt: skip
    with httpx.stream("POST", f"{audio_server.base_url}/audio/speech", json=body, headers=headers, timeout=120) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    assert [e["type"] for e in events][-1] == "speech.audio.done" and len(events) >= 3
    for event in events:
        validate("SpeechAudioDeltaEvent" if event["type"] == "speech.audio.delta" else "SpeechAudioDoneEvent", event)
    assert events[-1]["usage"]["input_tokens"] == len(body["input"])


def test_bad_input_is_a_400_naming_the_param(client) -> None:
    cases = [
        (lambda: client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"")), "file"),
        (lambda: client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"not audio at all" * 100)),
         "file"),
        (lambda: client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"x"), language="klingon"),
         "language"),
        (lambda: client.audio.speech.create(model="tts-1", voice="alloy", input=" "), "input"),
        (lambda: client.audio.speech.create(model="tts-1", voice="robot", input="hi"), "voice"),
        (lambda: client.audio.speech.create(model="tts-1", voice="alloy", input="x" * 4097), "input"),
        (lambda: client.audio.speech.create(model="tts-1", voice="alloy", input="hi", speed=9), "speed"),
        (lambda: client.audio.speech.create(model="whisper-1", voice="alloy", input="hi"), "model"),
    ]  # fmt: skip
    for call, param in cases:
        with pytest.raises(openai.BadRequestError) as err:
            call()
        assert err.value.body["param"] == param, (param, err.value.body)
    with pytest.raises(openai.NotFoundError):
        client.audio.speech.create(model="no-such-voice-model", voice="alloy", input="hi")
    with pytest.raises(openai.APIStatusError) as big:
        client.audio.transcriptions.create(model="whisper-1", file=("big.wav", b"\0" * (26 * 1024 * 1024)))
    assert big.value.status_code == 413


def test_audio_scope_and_usage(audio_server, client, spoken: bytes) -> None:
    env = {"HOMEPORT_DATA_DIR": str(audio_server.data_dir)}
    chat_only = openai.OpenAI(base_url=audio_server.base_url, max_retries=0,
                              api_key=create_key(env, "--name", "c", "--endpoints", "chat"))  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError):
        chat_only.audio.speech.create(model="tts-1", voice="alloy", input="hi")
    secret = create_key(env, "--name", "speaker", "--project", "voices", "--endpoints", "audio,usage")
    speaker = openai.OpenAI(base_url=audio_server.base_url, api_key=secret, max_retries=0, timeout=300)
    speaker.audio.speech.create(model="tts-1", voice="alloy", input="Twelve characters", response_format="wav")
    speaker.audio.transcriptions.create(model="whisper-1", file=("a.wav", spoken))
    headers = {"Authorization": f"Bearer {secret}"}

    def report(kind: str) -> list[dict]:
        r = httpx.get(f"{audio_server.base_url}/organization/usage/{kind}", headers=headers,
                      params={"start_time": int(time.time()) - 3600, "bucket_width": "1h"})  # fmt: skip
        validate("UsageResponse", r.json())
        return [x for b in r.json()["data"] for x in b["results"]]

    deadline = time.monotonic() + 60  # usage is written in the background
    while not (report("audio_speeches") and report("audio_transcriptions")) and time.monotonic() < deadline:
        time.sleep(0.2)
    (speech,), (heard,) = report("audio_speeches"), report("audio_transcriptions")
    assert speech["characters"] == len("Twelve characters") and speech["num_model_requests"] == 1
    assert heard["seconds"] >= 3 and heard["num_model_requests"] == 1


def _flac_declaring(seconds: int) -> bytes:
    """One second of FLAC whose STREAMINFO says it lasts `seconds` (its 36-bit total-samples field)."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="flac") as out:
        stream = out.add_stream("flac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    data = bytearray(buf.getvalue())
    total, info = seconds * 8000, 8  # STREAMINFO's data follows "fLaC" and a 4-byte block header
    data[info + 13] = (data[info + 13] & 0xF0) | (total >> 32 & 0x0F)
    data[info + 14 : info + 18] = (total & 0xFFFFFFFF).to_bytes(4, "big")
    return bytes(data)


def test_long_audio_is_transcribed_across_windows_and_too_long_is_refused(client) -> None:
    import subprocess

    # Varied sentences: repeated ones compress so well that Whisper takes them for a hallucination.
    story = ("The harbour was quiet when the first ship came in. Seven sailors carried boxes of apples up the hill. "
             "A child counted them and laughed at the gulls. By noon the market was full of voices. The baker sold "
             "bread to the captain. Rain began to fall in the afternoon. Everyone hurried home before the storm. "
             "At night the lighthouse kept its steady watch. In the morning a fisherman mended his torn nets. "
             "His daughter painted the old boat bright yellow. Tourists photographed the crooked chimneys. "
             "The mayor promised a new road to the village. Nobody believed him, but they cheered anyway. "
             "Later that summer the road was finished, and the buses began to arrive every Saturday.")  # fmt: skip
    long_wav = subprocess.run(["espeak-ng", "--stdout", story], capture_output=True, check=True).stdout
    out = client.audio.transcriptions.create(model="whisper-tiny-en", file=("long.wav", long_wav),
                                             response_format="verbose_json")  # fmt: skip
    assert out.duration > 35  # past Whisper's 30-second window
    ends = [s.end for s in out.segments]
    assert ends == sorted(ends) and ends[-1] > 30 and ends[-1] <= out.duration + 0.5
    assert wer(story, out.text) <= 0.35, out.text
    with pytest.raises(openai.BadRequestError) as err:  # refused from its header, before anything is decoded
        client.audio.transcriptions.create(model="whisper-1", file=("long.flac", _flac_declaring(3 * 3600)))
    assert err.value.body["param"] == "file" and "minutes" in err.value.message


def test_audio_queue_bound_and_rate_limits(tmp_path) -> None:
    """One transcription at a time and no queue (`engine.queue_size: 0`): a second concurrent one is a
    503 with Retry-After. A key's tokens-per-minute limit counts seconds of audio."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    from homeport.settings import DEFAULT_MODELS

    # Priced as OpenAI prices whisper-1: $0.006 a minute = $100 per 1M seconds (input_price's unit for audio).
    models = [m.model_dump(mode="json") | ({"input_price": 100.0} if m.id == "whisper-tiny-en" else {})
              for m in DEFAULT_MODELS]  # fmt: skip
    server = start_server(tmp_path, {"models": models, "load_models": ["whisper-tiny-en"],
                                     "engine": {"queue_size": 0}})  # fmt: skip
    try:
        env = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
        speech = subprocess.run(["espeak-ng", "--stdout", TEXT * 3], capture_output=True, check=True).stdout
        client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=300)

        def transcribe() -> int:
            try:
                client.audio.transcriptions.create(model="whisper-tiny-en", file=("a.wav", speech))
                return 200
            except openai.APIStatusError as exc:
                assert exc.status_code != 503 or exc.response.headers.get("retry-after")
                return exc.status_code

        with ThreadPoolExecutor(3) as pool:
            statuses = sorted(pool.map(lambda _: transcribe(), range(3)))
        assert statuses[0] == 200 and 503 in statuses, statuses
        limited = openai.OpenAI(base_url=server.base_url, max_retries=0, timeout=300,
                                api_key=create_key(env, "--name", "slow", "--tpm", "10"))  # fmt: skip
        short = subprocess.run(["espeak-ng", "--stdout", "Seven ships."], capture_output=True, check=True).stdout
        short_seconds = limited.audio.transcriptions.create(model="whisper-tiny-en",
                                                           file=("s.wav", short)).usage.seconds  # ~1 s of 10
        with pytest.raises(openai.RateLimitError):  # ~18 s of audio does not fit what is left this minute
            limited.audio.transcriptions.create(model="whisper-tiny-en", file=("a.wav", speech))
        seconds = client.audio.transcriptions.create(model="whisper-tiny-en", file=("a.wav", speech)).usage.seconds

        def spent() -> float:
            r = httpx.get(f"{server.base_url}/organization/costs", headers={"Authorization": f"Bearer {API_KEY}"},
                          params={"start_time": int(time.time()) - 86400})  # fmt: skip
            return sum(x["amount"]["value"] for b in r.json()["data"] for x in b["results"])

        # every transcription that ran is billed: those of the three that ran, the short one, this one
        billed = (statuses.count(200) + 1) * seconds + short_seconds
        deadline = time.monotonic() + 60  # usage is written in the background
        while spent() < billed * 100 / 1e6 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert spent() == pytest.approx(billed * 100 / 1e6)
    finally:
        stop_server(server)
