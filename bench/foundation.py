"""Foundation numbers: Homeport's HTTP API vs the same models called in-process.

    .venv/bin/python bench/foundation.py [--runs 3] [--tokens 256] [--json bench/results/foundation.json]

Measures, in one run on this machine:
  1. single-stream generation tok/s through Homeport (official SDK over HTTP) vs llama-cpp-python
     in-process on the same GGUF, same prompt, same max_tokens, end-of-turn banned on both sides
     so both generate exactly max_tokens;
  2. time to first token (p50/p90) for a short prompt, streaming;
  3. embeddings texts/s for 1,000 short sentences through the API vs the encoder in-process;
  4. the server's RSS with all default models loaded, and its peak RSS after the runs.
The server and the in-process runs never overlap (2 cores): each side has the machine alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"
PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
EOT = {"2": -100}  # SmolLM2's <|im_end|>: banned so every run generates exactly max_tokens
SENTENCES = [f"Sentence number {i} talks about topic {i % 37} in a few plain words." for i in range(1000)]


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def bench_http(base_url: str, runs: int, tokens: int) -> dict:
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=600)
    client.chat.completions.create(model=CHAT, messages=PROMPT, max_tokens=8)  # warm-up
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        out = client.chat.completions.create(
            model=CHAT, messages=PROMPT, max_tokens=tokens, temperature=0, logit_bias=EOT
        )
        elapsed = time.perf_counter() - start
        assert out.usage.completion_tokens == tokens, out.usage
        rates.append(tokens / elapsed)
    ttft = []
    for i in range(20):
        start = time.perf_counter()
        stream = client.chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": f"Say hi #{i}."}], max_tokens=4, stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                ttft.append(time.perf_counter() - start)
                break
        stream.close()
    client.embeddings.create(model=EMBED, input=SENTENCES[:10])  # warm-up
    emb_rates = {}
    for batch in (1000, 100):
        start = time.perf_counter()
        for i in range(0, len(SENTENCES), batch):
            client.embeddings.create(model=EMBED, input=SENTENCES[i : i + batch])
        emb_rates[batch] = len(SENTENCES) / (time.perf_counter() - start)
    return {"tok_s": statistics.median(rates), "ttft_s": ttft, "embed_texts_s": emb_rates}


def bench_in_process(runs: int, tokens: int) -> dict:
    import os

    from llama_cpp import Llama

    from homeport.backends.bert import BertEncoder
    from homeport.services.models import locate_weights
    from homeport.settings import DEFAULT_MODELS

    gguf = locate_weights(DEFAULT_MODELS[0], Path(tempfile.gettempdir()))
    threads = os.cpu_count() or 1
    llm = Llama(str(gguf), n_ctx=8192, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
    llm.create_chat_completion(messages=PROMPT, max_tokens=8)  # warm-up
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        out = llm.create_chat_completion(messages=PROMPT, max_tokens=tokens, temperature=0, logit_bias={2: -100.0})
        elapsed = time.perf_counter() - start
        assert out["usage"]["completion_tokens"] == tokens, out["usage"]
        rates.append(tokens / elapsed)
    llm.close()
    encoder = BertEncoder(locate_weights(DEFAULT_MODELS[2], Path(tempfile.gettempdir())))
    encoder.embed_tokens(encoder.tokenize(SENTENCES[:10]))
    start = time.perf_counter()
    encoder.embed_tokens(encoder.tokenize(SENTENCES))
    return {"tok_s": statistics.median(rates), "embed_texts_s": len(SENTENCES) / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "foundation.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {})
        try:
            loaded_rss = _rss_kib(server.process.pid, "VmRSS")
            http = bench_http(server.base_url, args.runs, args.tokens)
            peak_rss = _rss_kib(server.process.pid, "VmHWM")
        finally:
            stop_server(server)
    local = bench_in_process(args.runs, args.tokens)

    ttft = sorted(http["ttft_s"])
    p50, p90 = 1000 * ttft[len(ttft) // 2], 1000 * ttft[int(len(ttft) * 0.9)]
    emb_local = local["embed_texts_s"]
    emb_1000, emb_100 = http["embed_texts_s"][1000], http["embed_texts_s"][100]
    rows = [
        ("generation tok/s (single stream)", f"{http['tok_s']:.1f}", f"{local['tok_s']:.1f}",
         f"{http['tok_s'] / local['tok_s']:.2f}x"),
        ("time to first token p50 / p90 (ms)", f"{p50:.0f} / {p90:.0f}", "-", ""),
        ("embeddings texts/s, 1 x 1000", f"{emb_1000:.0f}", f"{emb_local:.0f}", f"{emb_1000 / emb_local:.2f}x"),
        ("embeddings texts/s, 10 x 100", f"{emb_100:.0f}", f"{emb_local:.0f}", f"{emb_100 / emb_local:.2f}x"),
        ("server RSS, models loaded / peak (MiB)", f"{loaded_rss / 1024:.0f} / {peak_rss / 1024:.0f}", "-", ""),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  {'Homeport HTTP':>14}  {'in-process':>10}  {'ratio':>6}")
    for name, ours, theirs, ratio in rows:
        print(f"{name:<{width}}  {ours:>14}  {theirs:>10}  {ratio:>6}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": {"cpus": __import__("os").cpu_count()},
        "max_tokens": args.tokens,
        "runs": args.runs,
        "homeport": {**http, "rss_loaded_mib": loaded_rss / 1024, "rss_peak_mib": peak_rss / 1024},
        "in_process": local,
    }
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
