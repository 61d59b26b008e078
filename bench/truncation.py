"""Truncation of long histories: a turn of a conversation or a thread longer than the model's context.

    .venv/bin/python bench/truncation.py [--items 300 1000]

A server on the default models. For each size N:
- a conversation of N stored messages (about 60 tokens each, so 1,000 of them are seven times
  SmolLM2's 8,192-token context) is planned for one more turn with `truncation: "auto"`
  (`POST /v1/responses/input_tokens`: which messages go, without the generation);
- an assistant thread of N such messages gets a run (its `truncation_strategy` is `auto` by
  default), whole: planning, then reading the kept prompt and writing up to 256 tokens.
Each prints its seconds, the prompt tokens kept, and the longest wait for /healthz (asked every
20 ms by another client) while it ran.

To measure an older checkout, run this file from a worktree of it with PYTHONPATH=<worktree>/src,
so the server it starts is that checkout's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

CHAT = "smollm2-135m-instruct"
WORDS = "the harbour master counted boats at dawn and wrote each name in a ledger by the window".split()


def _text(n: int) -> str:
    return " ".join(WORDS[(n + i) % len(WORDS)] for i in range(48)) + f" (message {n})"


def _conversation(client: httpx.Client, n: int) -> Callable[[], tuple[int, int]]:
    conversation = client.post("/conversations", json={}).json()["id"]
    items = [{"type": "message", "role": "user" if i % 2 == 0 else "assistant", "content": _text(i)} for i in range(n)]
    for start in range(0, n, 20):  # OpenAI's limit per call
        added = client.post(f"/conversations/{conversation}/items", json={"items": items[start : start + 20]})
        added.raise_for_status()

    def turn() -> tuple[int, int]:  # planning only: the kept prompt's tokens, counted as a response would count them
        answer = client.post("/responses/input_tokens", json={"model": CHAT, "conversation": conversation,
                                                                "input": "Say hi.", "truncation": "auto"})  # fmt: skip
        return answer.status_code, answer.json().get("input_tokens", 0)

    return turn


def _thread(client: httpx.Client, n: int) -> Callable[[], tuple[int, int]]:
    beta = {"OpenAI-Beta": "assistants=v2"}
    assistant = client.post("/assistants", json={"model": CHAT}, headers=beta).json()["id"]
    thread = client.post("/threads", json={}, headers=beta).json()["id"]
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        client.post(f"/threads/{thread}/messages", json={"role": role, "content": _text(i)},
                    headers=beta).raise_for_status()  # fmt: skip

    def turn() -> tuple[int, int]:
        run = client.post(f"/threads/{thread}/runs", json={"assistant_id": assistant, "max_completion_tokens": 256},
                          headers=beta).json()  # fmt: skip
        if "status" not in run:
            print(run)
            return 400, 0
        while run["status"] in ("queued", "in_progress"):
            time.sleep(0.05)
            run = client.get(f"/threads/{thread}/runs/{run['id']}", headers=beta).json()
        return (200 if run["status"] in ("completed", "incomplete") else 500), (run.get("usage") or {}).get(
            "prompt_tokens", 0
        )

    return turn


def measure(sizes: list[int]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"access_log": False})
        client = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=1800)
        beats: list[tuple[float, float]] = []  # (sent, waited) of each /healthz
        done = threading.Event()

        def beat() -> None:
            with httpx.Client(timeout=1800) as h:
                while not done.is_set():
                    sent = time.perf_counter()
                    h.get(f"{server.root}/healthz")
                    beats.append((sent, time.perf_counter() - sent))
                    time.sleep(0.02)

        threading.Thread(target=beat, daemon=True).start()
        try:
            for n in sizes:
                for kind, make in (("responses, conversation", _conversation), ("assistants, thread run", _thread)):
                    turn = make(client, n)
                    time.sleep(0.5)
                    began = time.perf_counter()
                    status, kept = turn()
                    ended = time.perf_counter()
                    while not beats or beats[-1][0] < ended:  # a /healthz sent after it ended
                        time.sleep(0.01)
                    waits = [waited for sent, waited in beats if began <= sent + waited and sent <= ended]
                    rows.append({"kind": kind, "messages": n, "status": status,
                                 "seconds": round(ended - began, 2), "prompt_tokens": kept,
                                 "longest_healthz_wait_ms": round(1000 * max(waits, default=0))})  # fmt: skip
                    print(rows[-1], flush=True)
        finally:
            done.set()
            stop_server(server)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, nargs="*", default=[300, 1000])
    args = parser.parse_args()
    rows = measure(args.items)
    print("\n| history | messages | status | seconds | prompt tokens kept | longest /healthz wait (ms) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['messages']:,} | {r['status']} | {r['seconds']} | {r['prompt_tokens']:,} "
              f"| {r['longest_healthz_wait_ms']} |")
    out = REPO / "bench" / "results" / "truncation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
