"""What one streamed token costs the server's event-loop thread (the HTTP side of a stream: the
hand-over from the engine, the chunk, the SSE write), and why it costs more between decodes.

    .venv/bin/python bench/stream_path.py

One stream at a time (`bench/serving.py`'s client), CPU time of the server's main thread (the
event loop; user + system, from /proc) per streamed token, in four settings:
- the fake chat engine, tokens back to back: the path with warm caches;
- the fake engine with 7 ms between tokens (about one decode step of the default model here): the
  loop sleeps between tokens and runs its path cold;
- the same while two processes stream through 200 MB arrays, as llama.cpp's decode does with the
  model's weights on every step: the caches are emptied between tokens;
- the default chat model (llama.cpp) itself;
- and, as the floor for a Python server, a bare ASGI app on uvicorn (no Homeport) that streams the
  same kind of chunk every 7 ms, without and with the caches emptied.
At one stream the cores are llama.cpp's: each microsecond of this thread is taken from its
decode threads (backends/llamacpp/batching.py).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from serving import _run  # noqa: E402

from tests.conftest import API_KEY, _free_port, start_server, stop_server  # noqa: E402

CHAT = "smollm2-135m-instruct"

# The floor: uvicorn (httptools, uvloop) and an ASGI app that writes one chunk every 7 ms.
_BARE_APP = """
import asyncio, json, sys, uvicorn
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        return await send({"type": "lifespan.shutdown.complete"})
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    for _ in range(1000):
        await asyncio.sleep(0.007)
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": "alpha "}, "logprobs": None, "finish_reason": None}]}
        frame = f"data: {json.dumps(chunk)}\\n\\n".encode()
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    usage = json.dumps({"choices": [], "usage": {"completion_tokens": 1000}})
    await send({"type": "http.response.body", "body": f"data: {usage}\\n\\ndata: [DONE]\\n\\n".encode()})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", http="httptools")
"""


def _loop_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stream_caches(seconds: float) -> None:
    import numpy as np

    data = np.ones(50_000_000, dtype=np.float32)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        data.sum()


def _per_token_us(base_url: str, pid: int, model: str, requests: int) -> tuple[float, float]:
    url = f"{base_url}/chat/completions"
    asyncio.run(_run(url, API_KEY, model, 1, 1, 8))
    before, began = _loop_cpu_s(pid), time.perf_counter()
    out = asyncio.run(_run(url, API_KEY, model, 1, requests, 1000 if model == "fake-chat" else 250))
    tokens = out["output_tok_per_s"] * (time.perf_counter() - began)
    return (_loop_cpu_s(pid) - before) / tokens * 1e6, tokens


def main() -> None:
    fake = {"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake", "fake_reply_tokens": 1000}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, delay, trash in (("fake engine, back to back", 0.0, False),
                                   ("fake engine, 7 ms apart", 0.007, False),
                                   ("fake engine, 7 ms apart, caches emptied", 0.007, True)):  # fmt: skip
            server = start_server(Path(tmp) / name.replace(" ", "_").replace(",", ""),
                                  {"models": [{**fake, "fake_token_delay_s": delay}], "load_models": ["fake-chat"],
                                   "cache_enabled": False, "access_log": False})  # fmt: skip
            trashers = [multiprocessing.Process(target=_stream_caches, args=(120,)) for _ in range(2 if trash else 0)]
            try:
                for t in trashers:
                    t.start()
                requests = 1 if delay else 8
                rows.append((name, *_per_token_us(server.base_url, server.process.pid, "fake-chat", requests)))
            finally:
                for t in trashers:
                    t.terminate()
                stop_server(server)
        server = start_server(Path(tmp) / "llama", {"load_models": [CHAT], "cache_enabled": False, "access_log": False})
        try:
            rows.append((f"{CHAT} (llama.cpp)", *_per_token_us(server.base_url, server.process.pid, CHAT, 4)))
        finally:
            stop_server(server)
    port = _free_port()
    bare = subprocess.Popen([sys.executable, "-c", _BARE_APP, str(port)])
    try:
        for _ in range(600):  # until it listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        for name, trash in (("bare uvicorn app, 7 ms apart", False),
                            ("bare uvicorn app, 7 ms apart, caches emptied", True)):  # fmt: skip
            trashers = [multiprocessing.Process(target=_stream_caches, args=(120,)) for _ in range(2 if trash else 0)]
            try:
                for t in trashers:
                    t.start()
                rows.append((name, *_per_token_us(f"http://127.0.0.1:{port}/v1", bare.pid, "fake-chat", 1)))
            finally:
                for t in trashers:
                    t.terminate()
    finally:
        bare.terminate()
        bare.wait()
    print("\n| one stream | tokens | event-loop thread CPU per token |\n|---|---|---|")
    for name, us, tokens in rows:
        print(f"| {name} | {tokens:.0f} | {us:.0f} µs |")


if __name__ == "__main__":
    main()
