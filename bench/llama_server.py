"""Homeport against llama.cpp's own C++ server (`llama-server`, continuous batching with `-np 8`),
on the same GGUF, the same streaming chat requests and the same client as bench/serving.py.

    .venv/bin/python bench/llama_server.py --llama-server PATH [--rounds 3] [--requests 16] [--max-tokens 128]
        [--streams 1 4 8 16] [--staggered]

`llama-server` is built from the llama.cpp that llama-cpp-python's sdist vendors, with the same
portable flags as ./run (nothing of it is committed):

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 && tar xzf llama_cpp_python-0.3.36.tar.gz
    cd llama_cpp_python-0.3.36/vendor/llama.cpp && cmake -B build -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON \\
        -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF \\
        -DGGML_AMX_INT8=OFF -DCMAKE_BUILD_TYPE=Release && cmake --build build --target llama-server -j 2

Both servers use every core and 8 slots. For each concurrency (1, 4, 8, 16), rounds alternate the
two servers seconds apart (this machine's speed drifts), and which goes first alternates too: per
server the median over rounds of output tok/s and of TTFT p50/p99, and the median of the per-round ratios.

By default every request asks for the same length, so at N streams requests come in waves of N that
start together from idle: TTFT then measures how fast a server takes in a burst. `--staggered`
draws each request's length (a quarter to 1.25x `--max-tokens`, the same draws for both servers in
a round), so streams end at different steps and each new request arrives while others decode: the
TTFT of steady traffic (the first wave, from idle, left out). Use more requests with it (48).

`--variant-env KEY=VALUE ...` adds a second Homeport server started with those environment variables
(a setting under test, e.g. OpenMP's OMP_WAIT_POLICY), taking its turn in every round like the others.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from serving import CONCURRENCY, _run  # noqa: E402

from tests.conftest import API_KEY, _free_port, start_server, stop_server  # noqa: E402


def _llama_server(binary: str, gguf: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port, threads = _free_port(), str(os.cpu_count() or 1)
    process = subprocess.Popen([binary, "-m", str(gguf), "--port", str(port), "-np", "8", "-c", str(8 * 2048),
                                "-t", threads, "-tb", threads, "--no-webui"],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, f"{base}/v1/chat/completions"
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(log.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--llama-server", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, nargs="*", default=list(CONCURRENCY))
    parser.add_argument("--staggered", action="store_true",
                        help="steady traffic: lengths vary, so requests arrive mid-stream (see serving._run)")
    parser.add_argument("--variant-env", nargs="*", default=[], metavar="KEY=VALUE",
                        help="also run a second Homeport started with these environment variables")
    args = parser.parse_args()
    variant = dict(pair.split("=", 1) for pair in args.variant_env)
    from homeport.services.inference.registry import locate_weights
    from homeport.settings import DEFAULT_MODELS

    model = "smollm2-135m-instruct"
    names = ["homeport", *(["homeport " + " ".join(args.variant_env)] if variant else []), "llama-server"]
    rows: dict[int, dict[str, list[dict]]] = {c: {name: [] for name in names} for c in args.streams}
    with tempfile.TemporaryDirectory() as tmp:
        gguf = locate_weights(DEFAULT_MODELS[0], Path(tmp))
        config = {"load_models": [model], "cache_enabled": False, "access_log": False}
        homeports = [start_server(Path(tmp) / "homeport", config)]
        if variant:
            homeports.append(start_server(Path(tmp) / "variant", config, env=variant))
        peer, peer_url = _llama_server(args.llama_server, gguf, Path(tmp) / "llama-server.log")
        try:
            servers = [(names[i], f"{h.base_url}/chat/completions", API_KEY) for i, h in enumerate(homeports)]
            servers.append((names[-1], peer_url, "none"))
            for _, url, key in servers:  # warm-up
                asyncio.run(_run(url, key, model, 1, 1, 8))
            for c in args.streams:
                for round_ in range(args.rounds):  # who goes first alternates (drift falls on both)
                    for name, url, key in servers if round_ % 2 == 0 else servers[::-1]:
                        run = _run(url, key, model, c, args.requests, args.max_tokens,
                                   staggered=round_ if args.staggered else None)  # fmt: skip
                        rows[c][name].append(asyncio.run(run))
        finally:
            for homeport in homeports:
                stop_server(homeport)
            peer.kill()
            peer.wait()
    lengths = f"{args.max_tokens // 4}-{args.max_tokens * 5 // 4} tokens (staggered)" if args.staggered else (
        f"{args.max_tokens} tokens")
    print(f"\n{args.requests} streaming requests of {lengths} per run, {args.rounds} paired rounds; medians\n")
    print("| streams | server | out tok/s | TTFT p50 ms | TTFT p99 ms | Homeport / llama-server tok/s |")
    print("|---|---|---|---|---|---|")
    for c, by in rows.items():
        for name, runs in by.items():
            tok = statistics.median(r["output_tok_per_s"] for r in runs)
            p50 = statistics.median(r["ttft_p50_ms"] for r in runs)
            p99 = statistics.median(r["ttft_p99_ms"] for r in runs)
            shown = "" if name == "llama-server" else f"{_ratio(runs, by['llama-server']):.2f}"
            print(f"| {c} | {name} | {tok:.1f} | {p50:.0f} | {p99:.0f} | {shown} |")


def _ratio(ours: list[dict], peer: list[dict]) -> float:
    """The median over rounds of the tok/s ratio."""
    return statistics.median(h["output_tok_per_s"] / p["output_tok_per_s"] for h, p in zip(ours, peer, strict=True))


if __name__ == "__main__":
    main()
