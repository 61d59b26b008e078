"""Serving benchmark: vLLM `bench serve`-style metrics for Homeport and llama-cpp-python's own server
on the same GGUF, with llama.cpp's batched-decode ceiling (no HTTP) as the limit column.

    .venv/bin/python bench/serving.py [--requests 16] [--max-tokens 128] [--rounds 6]
        [--json bench/results/serving.json]

For each concurrency (1, 4, 8, 16), `--requests` streaming chat requests (the same story prompt,
`max_tokens` each, temperature 0.8) go to each server; per run: request throughput, output tok/s,
TTFT, TPOT (time per output token after the first), ITL (gap between streamed chunks), p50/p99 —
as vLLM reports them. Each server first answers one short request (as `bench serve` does), so no
run pays for start-up work. The client is a plain HTTP/1.1 one (see `_one`) that parses every
event, as vLLM's benchmark client does with aiohttp; both servers get the same client.
The ceiling: llama.cpp decoding that many sequences in one batch per step (llama_batch with one
sequence id each, greedy), timed without HTTP or sampling overhead; in the table it is the mean
of runs right before and after Homeport's. "engine": the same requests through Homeport's engine
driven without HTTP in a process of its own (what the engine costs, apart from serving).
The issue's ratios come last, each from `--rounds` paired rounds (see `paired`): Homeport at 8
streams (8 requests) against the ceiling, and Homeport's single stream (one request) against
"direct", llama-cpp-python's own in-process generation (`Llama.create_chat_completion`, same
prompt and sampling); and Homeport against llama-cpp-python's server at 8 streams, from the table.
This machine's speed drifts by tens of percent over minutes (other tenants): compare only what
was measured seconds apart.
Both servers run the default chat model (SmolLM2-135M Q4_1) on all cores (llama-cpp-python's
server is given `--n_threads`: its default is half the cores) and llama-cpp-python's server runs
with `--interrupt_requests False` (by default a new request aborts the running one).
llama-cpp-python's server runs each `next()` of a stream on whichever AnyIO worker thread is free,
and OpenMP gives every thread that calls llama.cpp a team of its own: once several have, the
process holds more OpenMP threads than cores, libgomp stops spinning at barriers and each decode
takes about three times as long (py-spy: `llama_decode` called from four threads, 88% of the time
in it; TPOT about 12 ms in some runs, 33 ms in most). Its rows are what it serves, as users see.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from tests.conftest import API_KEY, start_llama_cpp_server, start_server, stop_server  # noqa: E402

CONCURRENCY = (1, 4, 8, 16)
PROMPT = "Write a long story about a lighthouse keeper and a storm. Describe every hour of the night."


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


class _Failed(Exception):
    pass


async def _one(url: str, key: str, model: str, max_tokens: int) -> dict:
    """One streaming chat request over a plain HTTP/1.1 connection: the client shares this
    machine's two cores with the server, so it does no more than it must (httpx, the SDK's client,
    spends twice the CPU per streamed token here, and each millisecond of it is taken from
    llama.cpp's threads). Every event is still parsed; tokens are counted from `usage`."""
    request = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
               "temperature": 0.8, "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    body = json.dumps(request).encode()
    target = urlsplit(url)
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection(target.hostname, target.port)
    try:
        writer.write(f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\nAuthorization: Bearer {key}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                     .encode() + body)  # fmt: skip
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            raise _Failed(f"HTTP {status}: {(await reader.read(300))!r}")
        arrivals: list[float] = []
        tokens, buffer = 0, b""
        async for data in _body(reader, chunked=b"transfer-encoding: chunked" in head.lower()):
            now = time.perf_counter()
            buffer = (buffer + data).replace(b"\r\n", b"\n")
            *events, buffer = buffer.split(b"\n\n")
            for line in (line for event in events for line in event.split(b"\n")):
                if not line.startswith(b"data:") or line.endswith(b"[DONE]"):
                    continue
                event = json.loads(line[5:])
                if event.get("usage"):
                    tokens = event["usage"].get("completion_tokens") or tokens
                if any((c.get("delta") or {}).get("content") for c in event.get("choices") or []):
                    arrivals.append(now)
    finally:
        writer.close()
    end = time.perf_counter()
    tokens = tokens or len(arrivals)
    ttft = arrivals[0] - began if arrivals else end - began
    return {"ttft": ttft, "latency": end - began, "tokens": tokens,
            "tpot": (end - began - ttft) / max(1, tokens - 1),
            "itl": [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]}  # fmt: skip


async def _body(reader: asyncio.StreamReader, *, chunked: bool) -> AsyncIterator[bytes]:
    if not chunked:
        while data := await reader.read(65536):
            yield data
        return
    while size := int((await reader.readline()).split(b";")[0], 16):
        yield (await reader.readexactly(size + 2))[:-2]


async def _run(
    url: str, key: str, model: str, concurrency: int, requests: int, max_tokens: int, *, staggered: int | None = None
) -> dict:
    """`requests` streaming requests, `concurrency` at a time, each asking for `max_tokens`. With
    `staggered` (a seed), each asks for a length drawn between a quarter and 1.25x `max_tokens`
    instead, so streams end, and new requests arrive, at different steps (steady traffic rather
    than waves); TTFT then leaves out the first `concurrency`, which start together from idle."""
    lengths = [max_tokens] * requests
    if staggered is not None:
        draw = random.Random(staggered)
        lengths = [draw.randint(max(1, max_tokens // 4), max_tokens * 5 // 4) for _ in range(requests)]
    pending = list(enumerate(lengths))[::-1]
    done: list[tuple[int, dict]] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while pending:
            started, length = pending.pop()
            try:
                done.append((started, await _one(url, key, model, length)))
            except (OSError, asyncio.IncompleteReadError, ValueError, _Failed) as exc:
                failures += 1
                print(f"  {url}: request failed: {type(exc).__name__}: {exc}")

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    itl = [x for _, d in done for x in d["itl"]]
    out = {"req_per_s": len(done) / elapsed, "output_tok_per_s": sum(d["tokens"] for _, d in done) / elapsed,
           "failures": failures}  # fmt: skip
    first = concurrency if staggered is not None else 0
    ttft = [d["ttft"] for started, d in done if started >= first]
    for name, values in (("ttft", ttft), ("tpot", [d["tpot"] for _, d in done]), ("itl", itl)):
        out[f"{name}_p50_ms"] = 1000 * statistics.median(values) if values else float("nan")
        out[f"{name}_p99_ms"] = 1000 * _pct(values, 0.99)
    return out


def ceiling(llm: Any, b: int, max_tokens: int) -> float:
    """llama.cpp's own batched decode: aggregate tok/s with `b` sequences decoded together per step."""
    import llama_cpp as lc

    prompt = llm.tokenize(PROMPT.encode(), add_bos=True)
    n_vocab = lc.llama_n_vocab(lc.llama_model_get_vocab(llm._model.model))
    params = lc.llama_context_default_params()
    per_sequence = -(-(len(prompt) + max_tokens + 16) // 256) * 256  # each sequence gets n_ctx / n_seq_max
    params.n_ctx = b * per_sequence
    params.n_threads = params.n_threads_batch = os.cpu_count() or 1
    params.n_batch = max(512, b * len(prompt))
    params.n_seq_max = b
    ctx = lc.llama_init_from_model(llm._model.model, params)
    batch = lc.llama_batch_init(max(b * len(prompt), b), 0, 1)
    try:
        n = 0
        for s in range(b):  # every sequence's prompt in one batch; logits at each last token
            for i, t in enumerate(prompt):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = t, i, 1
                batch.seq_id[n][0] = s
                batch.logits[n] = i == len(prompt) - 1
                n += 1
        batch.n_tokens = n
        assert lc.llama_decode(ctx, batch) == 0
        last = [(s + 1) * len(prompt) - 1 for s in range(b)]
        began = time.perf_counter()
        for step in range(max_tokens):
            tokens = [
                int(np.argmax(np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, i), shape=(n_vocab,)))) for i in last
            ]
            for s, t in enumerate(tokens):
                batch.token[s], batch.pos[s], batch.n_seq_id[s] = t, len(prompt) + step, 1
                batch.seq_id[s][0] = s
                batch.logits[s] = True
            batch.n_tokens = b
            assert lc.llama_decode(ctx, batch) == 0
            last = list(range(b))
        return b * max_tokens / (time.perf_counter() - began)
    finally:
        lc.llama_batch_free(batch)
        lc.llama_free(ctx)


def direct(llm: Any, max_tokens: int, runs: int = 4) -> float:
    """Single-stream output tok/s of llama-cpp-python's in-process generation (no HTTP)."""
    tokens, began = 0, time.perf_counter()
    for _ in range(runs):
        out = llm.create_chat_completion([{"role": "user", "content": PROMPT}], max_tokens=max_tokens,
                                         temperature=0.8)  # fmt: skip
        tokens += out["usage"]["completion_tokens"]
    return tokens / (time.perf_counter() - began)


class InProcess:
    """Homeport's engine driven without HTTP, in a process of its own: llama.cpp's OpenMP threads
    slow each other down when two threads of one process call it (see backends/llamacpp/batching.py), so
    the engine must not share this process with the ceiling and direct measurements."""

    def __init__(self, gguf: Path) -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_load_engine, initargs=(str(gguf),))  # fmt: skip

    def run(self, concurrency: int, requests: int, max_tokens: int) -> float:
        return self._pool.submit(_engine_run, concurrency, requests, max_tokens).result()

    def close(self) -> None:
        self._pool.shutdown()


class RemoteCeiling:
    """`ceiling` measured in a process of its own, for a process that runs Homeport's engine."""

    def __init__(self, gguf: Path) -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_load_llama, initargs=(str(gguf),))  # fmt: skip

    def run(self, b: int, max_tokens: int) -> float:
        return self._pool.submit(_ceiling_run, b, max_tokens).result()

    def close(self) -> None:
        self._pool.shutdown()


_ENGINE: Any = None
_LLAMA: Any = None


def _load_llama(gguf: str) -> None:
    global _LLAMA
    from llama_cpp import Llama

    _LLAMA = Llama(gguf, n_ctx=256, verbose=False)


def _ceiling_run(b: int, max_tokens: int) -> float:
    return ceiling(_LLAMA, b, max_tokens)


def _load_engine(gguf: str) -> None:
    global _ENGINE
    sys.path.insert(0, str(REPO / "src"))
    from homeport.backends.llamacpp.engine import LlamaCppEngine
    from homeport.settings import EngineSettings

    _ENGINE = LlamaCppEngine(Path(gguf), settings=EngineSettings())  # what the server runs


def _engine_run(concurrency: int, requests: int, max_tokens: int) -> float:
    """Output tok/s for the same requests and sampling as over HTTP (temperature 0.8; top_p 0.9
    is the model's default)."""
    from homeport.backends.base import GenerationRequest, Message, SamplingParams, Token

    prompt = _ENGINE.apply_chat_template([Message("user", PROMPT)])
    sampling = SamplingParams(max_tokens=max_tokens, temperature=0.8, top_p=0.9)

    async def worker(count: int) -> int:
        tokens = 0
        for _ in range(count):
            request = GenerationRequest(prompt, sampling)
            tokens += len([x async for x in _ENGINE.generate(request) if isinstance(x, Token)])
        return tokens

    async def run() -> float:
        began = time.perf_counter()
        counts = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
        tokens = sum(await asyncio.gather(*(worker(n) for n in counts)))
        return tokens / (time.perf_counter() - began)

    return asyncio.run(run())


def paired(reference: Callable[[], float], homeport: Callable[[], float], rounds: int) -> dict:
    """Homeport's runs alternate with reference runs, each Homeport run compared with the mean of
    the reference runs right before and after it: this machine's speed drifts by tens of percent
    over minutes, so only measurements seconds apart are compared; the median of the rounds is
    the ratio, min and max its spread."""
    refs, runs = [reference()], []
    for _ in range(rounds):
        runs.append(homeport())
        refs.append(reference())
    ratios = [h / ((a + b) / 2) for h, a, b in zip(runs, refs, refs[1:], strict=False)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "ratios": ratios,
            "homeport_tok_per_s": runs, "reference_tok_per_s": refs}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6, help="paired rounds for each goal ratio")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "serving.json")
    args = parser.parse_args()
    from llama_cpp import Llama

    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS

    results: dict[str, dict] = {}
    limit: dict[int, float] = {}
    engine_only: dict[int, float] = {}
    goals: dict[str, dict] = {}
    model = "smollm2-135m-instruct"
    with tempfile.TemporaryDirectory() as tmp:
        gguf = locate_weights(DEFAULT_MODELS[0], Path(tmp))
        threads = os.cpu_count() or 1
        llm = Llama(str(gguf), n_ctx=2048, n_threads=threads, verbose=False)  # ceiling and direct
        direct(llm, 8, runs=1)  # warm: the first call pays for paging the weights in
        engine = InProcess(gguf)
        engine.run(1, 1, 8)
        homeport = start_server(Path(tmp) / "homeport", {"load_models": [model], "cache_enabled": False,
                                                         "access_log": False})  # fmt: skip
        try:
            url = f"{homeport.base_url}/chat/completions"
            asyncio.run(_run(url, API_KEY, model, 1, 1, 8))  # warm-up
            results["homeport"] = {}
            for c in CONCURRENCY:
                before = ceiling(llm, c, args.max_tokens)
                results["homeport"][c] = asyncio.run(_run(url, API_KEY, model, c, args.requests, args.max_tokens))
                engine_only[c] = engine.run(c, args.requests, args.max_tokens)
                limit[c] = (before + ceiling(llm, c, args.max_tokens)) / 2

            def served(c: int) -> Callable[[], float]:
                return lambda: asyncio.run(_run(url, API_KEY, model, c, c, args.max_tokens))["output_tok_per_s"]

            goals["8 streams: Homeport / ceiling"] = paired(lambda: ceiling(llm, 8, args.max_tokens), served(8),
                                                            args.rounds)  # fmt: skip
            goals["1 stream: Homeport / direct"] = paired(lambda: direct(llm, args.max_tokens, runs=1), served(1),
                                                          args.rounds)  # fmt: skip
        finally:
            stop_server(homeport)
        llm.close()
        engine.close()
        server, base_url = start_llama_cpp_server(gguf, Path(tmp) / "llama-server.log", "--n_ctx", "8192",
                                                  "--interrupt_requests", "False", "--n_threads", str(threads),
                                                  "--n_threads_batch", str(threads))  # fmt: skip
        try:
            url = f"{base_url}/chat/completions"
            asyncio.run(_run(url, "none", "smollm2", 1, 1, 8))  # warm-up
            results["llama-cpp-python server"] = {
                c: asyncio.run(_run(url, "none", "smollm2", c, args.requests, args.max_tokens)) for c in CONCURRENCY
            }
        finally:
            server.kill()
            server.wait()
    print(f"\n{'server':24} {'conc':>4} {'req/s':>6} {'out tok/s':>9} {'engine':>7} {'ceiling':>8} "
          f"{'TTFT p50/p99 ms':>16} {'TPOT p50/p99 ms':>16} {'ITL p50/p99 ms':>15}")  # fmt: skip
    for name, by_c in results.items():
        for c, r in by_c.items():
            ttft = f"{r['ttft_p50_ms']:.0f}/{r['ttft_p99_ms']:.0f}"
            tpot = f"{r['tpot_p50_ms']:.1f}/{r['tpot_p99_ms']:.1f}"
            itl = f"{r['itl_p50_ms']:.1f}/{r['itl_p99_ms']:.1f}"
            own = f"{engine_only[c]:.1f}" if name == "homeport" else ""
            print(f"{name:24} {c:>4} {r['req_per_s']:>6.2f} {r['output_tok_per_s']:>9.1f} {own:>7} {limit[c]:>8.1f} "
                  f"{ttft:>16} {tpot:>16} {itl:>15}")  # fmt: skip
    hp, peer = results["homeport"], results["llama-cpp-python server"]
    goals["8 streams: Homeport / llama-cpp-python server"] = {
        "median": hp[8]["output_tok_per_s"] / peer[8]["output_tok_per_s"]
    }
    print(f"\nGoal ratios ({args.rounds} paired rounds each: median [min-max]; the server ratio from the table):")
    for name, g in goals.items():
        spread = f" [{g['min']:.2f}-{g['max']:.2f}]" if "min" in g else ""
        print(f"  {name:46} {g['median']:.2f}{spread}")
    print(f"Homeport's engine without HTTP (table rows): / ceiling at 8 = {engine_only[8] / limit[8]:.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"ceiling_tok_per_s": limit, "engine_in_process_tok_per_s": engine_only,
                                     "goals": goals, "servers": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
