"""Soak: a bounded mixed workload on one server, watched for leaks and drift.

Eight clients loop over chat (plain and streamed), streams they leave after two chunks,
non-streamed calls they give up on (a slow model), embeddings, file upload and delete, vector
search, assistant runs and stored responses, picked by a seeded RNG. Every SAMPLE_S the server's
RSS, open file descriptors, asyncio tasks and checked-out database connections are read from
/metrics; client latencies give p99 per window. It passes when, after the warm-up, RSS ends within
10% of its warm value, descriptors and tasks do not grow, no answer is a 5xx, and p99 holds.

`HOMEPORT_SOAK_S` sets the length: 60 s in `./run test`, 1,200 s (20 minutes) in
`./run reliability`. `HOMEPORT_SOAK_ON=postgresql` runs the server on PostgreSQL + Redis (a fresh
database on the shared server) instead of the embedded SQLite. The curve is drawn to
reports/soak[-postgresql].png, its numbers to reports/soak[-postgresql].json.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import statistics
import time
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import API_KEY, REPO, Server, start_server, stop_server, wait_for_status
from tests.reliability.authz import FAKE_MODELS

DURATION_S = float(os.environ.get("HOMEPORT_SOAK_S", "60"))
SAMPLE_S = 30.0 if DURATION_S >= 600 else DURATION_S / 12
WARM_UP_S = DURATION_S / 5
WINDOW_S = 60.0 if DURATION_S >= 600 else DURATION_S / 4
CLIENTS = 8
SLOW = {"id": "slow-chat", "version": "v1", "kind": "chat", "backend": "fake", "fake_token_delay_s": 0.05}
REPORTS = REPO / "reports"
ON = os.environ.get("HOMEPORT_SOAK_ON", "sqlite")
REPORT = "soak" if ON == "sqlite" else f"soak-{ON}"


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest):  # -> Server
    config = {"models": [*FAKE_MODELS, SLOW], "vector_store_model": "fake-embed", "cache_enabled": False,
              "access_log": False}  # fmt: skip
    env = request.getfixturevalue("replica_env") if ON == "postgresql" else None
    found = start_server(tmp_path, config, env)
    yield found
    stop_server(found)


def _resources(server: Server) -> dict[str, float]:
    wanted = {"process_resident_memory_bytes": "rss_mb", "process_open_fds": "fds",
              "homeport_asyncio_tasks": "tasks", "homeport_db_connections": "db_connections"}  # fmt: skip
    out = {}
    for family in text_string_to_metric_families(httpx.get(f"{server.root}/metrics", timeout=60).text):
        for sample in family.samples:
            if sample.name in wanted:
                out[wanted[sample.name]] = sample.value
    out["rss_mb"] = round(out["rss_mb"] / 2**20, 1)
    return out


class _Workload:
    def __init__(self, server: Server, client: openai.AsyncOpenAI, store_id: str, assistant_id: str) -> None:
        self.server, self.client, self.store_id, self.assistant_id = server, client, store_id, assistant_id
        self.latencies: list[tuple[float, str, float]] = []  # (when, op, seconds)
        self.errors: list[str] = []

    async def run(self, seed: int, until: float) -> None:
        rng = random.Random(seed)
        ops = [self.chat, self.chat, self.stream, self.leave_stream, self.give_up, self.embed, self.embed,
               self.file, self.search, self.run_assistant, self.respond]  # fmt: skip
        while time.monotonic() < until:
            op = rng.choice(ops)
            started = time.monotonic()
            try:
                await op()
            except openai.APIStatusError as exc:
                if exc.status_code >= 500:
                    self.errors.append(f"{op.__name__}: {exc.status_code} {exc.message}")
            self.latencies.append((started, op.__name__, time.monotonic() - started))

    async def chat(self) -> None:
        await self.client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": "hi"}])

    async def stream(self) -> None:
        async for _ in await self.client.chat.completions.create(
            model="fake-chat", messages=[{"role": "user", "content": "tell me"}], stream=True
        ):
            pass

    async def leave_stream(self) -> None:
        chunks = await self.client.chat.completions.create(
            model="slow-chat", messages=[{"role": "user", "content": "go on"}], stream=True
        )
        seen = 0
        async for _ in chunks:
            seen += 1
            if seen == 2:
                break
        await chunks.close()  # the client leaves mid-stream

    async def give_up(self) -> None:
        try:
            await self.client.with_options(timeout=0.3, max_retries=0).chat.completions.create(
                model="slow-chat", messages=[{"role": "user", "content": "slowly"}]
            )
        except openai.APITimeoutError:
            pass  # the server must free what it held for this request

    async def embed(self) -> None:
        await self.client.embeddings.create(model="fake-embed", input=["soak test", "another text"])

    async def file(self) -> None:
        stored = await self.client.files.create(file=("s.txt", io.BytesIO(b"x" * 20_000)), purpose="user_data")
        await self.client.files.delete(stored.id)

    async def search(self) -> None:
        await self.client.vector_stores.search(self.store_id, query="lantern harbour")

    async def run_assistant(self) -> None:
        run = await self.client.beta.threads.create_and_run_poll(
            assistant_id=self.assistant_id, thread={"messages": [{"role": "user", "content": "hello"}]},
            poll_interval_ms=100,
        )  # fmt: skip
        await self.client.beta.threads.delete(run.thread_id)

    async def respond(self) -> None:
        await self.client.responses.create(model="fake-chat", input="a short answer", max_output_tokens=16)


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else (values[0] if values else 0.0)


def test_soak(server: Server) -> None:
    sync = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    text = "The lantern in the harbour burns copper bright. " * 200
    file = sync.files.create(file=("lore.txt", io.BytesIO(text.encode())), purpose="assistants")
    store = sync.vector_stores.create(file_ids=[file.id])
    wait_for_status(lambda: sync.vector_stores.retrieve(store.id), ("completed",))
    assistant = sync.beta.assistants.create(model="fake-chat")
    samples: list[dict[str, float]] = []

    async def soak() -> _Workload:
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120)
        work = _Workload(server, client, store.id, assistant.id)
        start = time.monotonic()
        until = start + DURATION_S

        async def sample() -> None:
            while time.monotonic() < until:
                found = await asyncio.to_thread(_resources, server)
                samples.append({"t": round(time.monotonic() - start, 1), **found})
                await asyncio.sleep(SAMPLE_S)
            samples.append({"t": round(time.monotonic() - start, 1), **await asyncio.to_thread(_resources, server)})

        await asyncio.gather(sample(), *(work.run(seed, until) for seed in range(CLIENTS)))
        await client.close()
        work.latencies = [(t - start, op, s) for t, op, s in work.latencies]
        return work

    work = asyncio.run(soak())
    windows: dict[int, list[float]] = {}
    for when, _, seconds in work.latencies:
        windows.setdefault(int(when // WINDOW_S), []).append(seconds)
    p99 = {w * WINDOW_S: round(_p99(v), 3) for w, v in sorted(windows.items()) if len(v) >= 20}
    warm = next(s for s in samples if s["t"] >= WARM_UP_S)
    end = samples[-1]
    report = {"duration_s": DURATION_S, "requests": len(work.latencies), "samples": samples, "p99_by_window_s": p99,
              "warm": warm, "end": end, "errors": work.errors[:20]}  # fmt: skip
    _draw(report)
    print(f"\nsoak {DURATION_S:.0f} s, {len(work.latencies)} requests: RSS {warm['rss_mb']} → {end['rss_mb']} MB, "
          f"fds {warm['fds']:.0f} → {end['fds']:.0f}, tasks {warm['tasks']:.0f} → {end['tasks']:.0f}, "
          f"db connections {end['db_connections']:.0f}; p99 per window {p99}")  # fmt: skip
    assert work.errors == [], work.errors[:5]
    assert end["rss_mb"] <= warm["rss_mb"] * 1.10, "RSS grew more than 10% after the warm-up"
    assert end["fds"] <= warm["fds"] + 10, "open file descriptors grew"
    assert end["tasks"] <= warm["tasks"] + 10, "asyncio tasks grew"
    steady = [v for t, v in p99.items() if t >= WARM_UP_S]
    assert steady and max(steady) <= 3 * min(steady) + 0.25, f"p99 drifted: {p99}"


def _draw(report: dict) -> None:
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / f"{REPORT}.json").write_text(json.dumps(report, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = report["samples"]
    t = [s["t"] / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    axes[0].plot(t, [s["rss_mb"] for s in samples], marker="o")
    axes[0].set_ylabel("RSS (MB)")
    axes[1].plot(t, [s["fds"] for s in samples], label="open fds")
    axes[1].plot(t, [s["tasks"] for s in samples], label="asyncio tasks")
    axes[1].plot(t, [s["db_connections"] for s in samples], label="db connections")
    axes[1].legend()
    windows = sorted(report["p99_by_window_s"].items())
    axes[2].plot([w / 60 for w, _ in windows], [v * 1000 for _, v in windows], marker="o")
    axes[2].set_ylabel("p99 latency (ms)")
    axes[2].set_xlabel("minutes")
    fig.suptitle(f"Homeport soak ({ON}): {report['requests']} requests in {report['duration_s'] / 60:.0f} min")
    fig.tight_layout()
    fig.savefig(REPORTS / f"{REPORT}.png", dpi=90)
    plt.close(fig)
