"""Long prompts: what they cost to tokenize, and whether the server keeps answering meanwhile.

    .venv/bin/python bench/long_prompts.py [--turns 5000 20000]

1. Tokenizing a ChatML conversation of N one-word turns with the default chat model's vocabulary:
   llama.cpp's own call on the whole text (what llama-server does) against Homeport's pieces
   (backends/llamacpp/tokenizing.py), and whether the ids are equal.
2. A server on the default models gets large requests, one at a time, while another client asks
   /healthz every 20 ms: each request's time and the longest /healthz wait during it (the event
   loop's longest stall).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from heartbeat import Heartbeat  # noqa: E402

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

CHAT, EMBED = "smollm2-135m-instruct", "all-minilm-l6-v2"
TURN = {"role": "user", "content": "a"}


def tokenizing(turns: list[int]) -> list[dict]:
    if not turns:  # e.g. `--turns` alone, to measure an older checkout's server only
        return []
    import llama_cpp

    from homeport.backends.llamacpp.engine import _special_tokens
    from homeport.backends.llamacpp.tokenizing import SpecialPieces
    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS

    llm = llama_cpp.Llama(str(locate_weights(DEFAULT_MODELS[0], Path("/nonexistent"))), vocab_only=True, verbose=False)
    pieces = SpecialPieces(_special_tokens(llama_cpp, llm._model.vocab, llm.n_vocab()))
    whole = partial(llm.tokenize, add_bos=False, special=True)
    rows = []
    for n in turns:
        text = "".join("<|im_start|>user\na<|im_end|>\n" for _ in range(n)).encode()
        began = time.perf_counter()
        expected = whole(text)
        whole_s = time.perf_counter() - began
        began = time.perf_counter()
        got = pieces.tokenize(text, whole)
        rows.append({"turns": n, "tokens": len(got), "llama_cpp_whole_s": round(whole_s, 3),
                     "homeport_pieces_s": round(time.perf_counter() - began, 3), "equal": got == expected})  # fmt: skip
    return rows


def stalls() -> list[dict]:
    cases = {
        "chat, 50,000 turns": ("/chat/completions", {"model": CHAT, "messages": [TURN] * 50_000, "max_tokens": 2}),
        "chat, one 2 MB message": ("/chat/completions",
                                   {"model": CHAT, "messages": [{"role": "user", "content": "word " * 400_000}]}),
        "completions, 2 MB prompt": ("/completions", {"model": CHAT, "prompt": "word " * 400_000, "max_tokens": 2}),
        "responses, 10,000 input items": ("/responses", {"model": CHAT, "input": [TURN] * 10_000}),
        "embeddings, 2 MB input": ("/embeddings", {"model": EMBED, "input": "word " * 400_000}),
    }  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"access_log": False})
        client = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=900)
        heartbeat = Heartbeat(server.root, timeout=900)
        try:
            for name, (path, body) in cases.items():
                raw = json.dumps(body).encode()
                time.sleep(0.5)  # the last request's stall is over
                began = time.perf_counter()
                answer = client.post(path, content=raw, headers={"content-type": "application/json"})
                ended = time.perf_counter()
                rows.append({"request": name, "mb": round(len(raw) / 1e6, 1), "status": answer.status_code,
                             "seconds": round(ended - began, 2),
                             "longest_healthz_wait_ms": heartbeat.longest_wait_ms(began, ended)})  # fmt: skip
        finally:
            heartbeat.stop()
            stop_server(server)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, nargs="*", default=[5000, 20000])
    args = parser.parse_args()
    tok = tokenizing(args.turns)
    print("\n| turns | tokens | llama.cpp, whole text (s) | Homeport, in pieces (s) | same ids |")
    print("|---|---|---|---|---|")
    for r in tok:
        print(f"| {r['turns']:,} | {r['tokens']:,} | {r['llama_cpp_whole_s']} | {r['homeport_pieces_s']} "
              f"| {r['equal']} |")
    served = stalls()
    print("\n| request | MB | status | seconds | longest /healthz wait meanwhile (ms) |\n|---|---|---|---|---|")
    for r in served:
        print(f"| {r['request']} | {r['mb']} | {r['status']} | {r['seconds']} | {r['longest_healthz_wait_ms']} |")
    out = REPO / "bench" / "results" / "long_prompts.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tokenizing": tok, "served": served}, indent=2))


if __name__ == "__main__":
    main()
