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
import os
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


class Http:
    """The path under test: the official SDK talking to a Homeport server over loopback."""

    def __init__(self, base_url: str) -> None:
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=600)
        self.client.chat.completions.create(model=CHAT, messages=PROMPT, max_tokens=8)  # warm-up
        self.client.embeddings.create(model=EMBED, input=SENTENCES[:10])

    def generate(self, tokens: int) -> float:
        start = time.perf_counter()
        out = self.client.chat.completions.create(
            model=CHAT, messages=PROMPT, max_tokens=tokens, temperature=0, logit_bias=EOT
        )
        elapsed = time.perf_counter() - start
        assert out.usage.completion_tokens == tokens, out.usage
        return tokens / elapsed

    def ttft(self, i: int) -> float:
        start = time.perf_counter()
        messages = [{"role": "user", "content": f"Say hi #{i}."}]
        with self.client.chat.completions.create(model=CHAT, messages=messages, max_tokens=4, stream=True) as stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    return time.perf_counter() - start
        raise AssertionError("no content")

    def embed(self, batch: int) -> float:
        start = time.perf_counter()
        for i in range(0, len(SENTENCES), batch):
            self.client.embeddings.create(model=EMBED, input=SENTENCES[i : i + batch])
        return len(SENTENCES) / (time.perf_counter() - start)


class InProcess:
    """The ceiling: the same weights called directly, no HTTP, no Homeport."""

    def __init__(self) -> None:
        from llama_cpp import Llama

        from homeport.backends.bert import BertEncoder
        from homeport.services.inference.registry import locate_weights
        from homeport.settings import DEFAULT_MODELS

        tmp = Path(tempfile.gettempdir())
        threads = os.cpu_count() or 1
        gguf = locate_weights(DEFAULT_MODELS[0], tmp)
        self.llm = Llama(str(gguf), n_ctx=8192, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
        self.llm.create_chat_completion(messages=PROMPT, max_tokens=8)  # warm-up
        self.encoder = BertEncoder(locate_weights(DEFAULT_MODELS[2], tmp))
        self.encoder.embed_tokens(self.encoder.tokenize(SENTENCES[:10]))

    def generate(self, tokens: int) -> float:
        start = time.perf_counter()
        out = self.llm.create_chat_completion(messages=PROMPT, max_tokens=tokens, temperature=0, logit_bias={2: -100.0})
        elapsed = time.perf_counter() - start
        assert out["usage"]["completion_tokens"] == tokens, out["usage"]
        return tokens / elapsed

    def embed(self) -> float:
        start = time.perf_counter()
        self.encoder.embed_tokens(self.encoder.tokenize(SENTENCES))
        return len(SENTENCES) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "foundation.json")
    args = parser.parse_args()

    # Runs alternate between the two sides so that drifts in this shared machine's speed hit
    # both alike; each side has the machine alone while it runs (the other one is idle).
    gen: dict[str, list[float]] = {"http": [], "local": []}
    emb: dict[str, list[float]] = {"http_1000": [], "http_100": [], "local": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {})
        try:
            loaded_rss = _rss_kib(server.process.pid, "VmRSS")
            ours, theirs = Http(server.base_url), InProcess()
            for _ in range(args.runs):
                gen["http"].append(ours.generate(args.tokens))
                gen["local"].append(theirs.generate(args.tokens))
                emb["http_1000"].append(ours.embed(1000))
                emb["http_100"].append(ours.embed(100))
                emb["local"].append(theirs.embed())
            ttfts = [ours.ttft(i) for i in range(20)]
            peak_rss = _rss_kib(server.process.pid, "VmHWM")
        finally:
            stop_server(server)
    http = {
        "tok_s": statistics.median(gen["http"]),
        "ttft_s": ttfts,
        "embed_texts_s": {1000: statistics.median(emb["http_1000"]), 100: statistics.median(emb["http_100"])},
    }
    local = {"tok_s": statistics.median(gen["local"]), "embed_texts_s": statistics.median(emb["local"])}
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
        "machine": {"cpus": os.cpu_count()},
        "max_tokens": args.tokens,
        "runs": args.runs,
        "homeport": {**http, "rss_loaded_mib": loaded_rss / 1024, "rss_peak_mib": peak_rss / 1024},
        "in_process": local,
        "samples": {"generation_tok_s": gen, "embeddings_texts_s": emb},
    }
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
