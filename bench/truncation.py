"""Truncation of long histories: the conversations and threads that outgrow the model's context.

    .venv/bin/python bench/truncation.py [--items 300 1000] [--turns 8] [--context 2048]

A server on the default models (SmolLM2 with its context set to `--context` tokens for part 2).

1. Planning. A conversation of N stored messages (about 60 tokens each: 1,000 of them are seven
   times SmolLM2's 8,192-token context) is planned for one more turn with `truncation: "auto"`
   (`POST /v1/responses/input_tokens`: which messages go, without generating). Seconds, the prompt
   tokens kept, and the longest wait for /healthz (asked every 20 ms by another client) meanwhile.
2. A long chat. A conversation already past the context (its messages total about twice it) gets
   `--turns` more turns (a user message, a reply of up to 16 tokens, `truncation: "auto"`), and so
   does an assistant thread (runs, whose truncation is `auto` by default; replies up to 256
   tokens, the least a run may ask for). Per turn: seconds, the prompt tokens read, and (for
   responses, whose usage says so) how many of them came from the engine's cache.

To measure an older checkout, run this file from a worktree of it with PYTHONPATH=<worktree>/src,
so the server it starts is that checkout's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from heartbeat import Heartbeat  # noqa: E402

from tests.conftest import API_KEY, start_server, stop_server  # noqa: E402

CHAT = "smollm2-135m-instruct"
WORDS = "the harbour master counted boats at dawn and wrote each name in a ledger by the window".split()
BETA = {"OpenAI-Beta": "assistants=v2"}


def _text(n: int) -> str:
    return " ".join(WORDS[(n + i) % len(WORDS)] for i in range(48)) + f" (message {n})"


def _conversation(client: httpx.Client, n: int) -> str:
    conversation = client.post("/conversations", json={}).json()["id"]
    items = [{"type": "message", "role": "user" if i % 2 == 0 else "assistant", "content": _text(i)} for i in range(n)]
    for start in range(0, n, 20):  # OpenAI's limit per call
        added = client.post(f"/conversations/{conversation}/items", json={"items": items[start : start + 20]})
        added.raise_for_status()
    return str(conversation)


def _thread(client: httpx.Client, n: int) -> str:
    thread = client.post("/threads", json={}, headers=BETA).json()["id"]
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        client.post(f"/threads/{thread}/messages", json={"role": role, "content": _text(i)},
                    headers=BETA).raise_for_status()  # fmt: skip
    return str(thread)


def planning(client: httpx.Client, heartbeat: Heartbeat, sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        conversation = _conversation(client, n)
        time.sleep(0.5)
        began = time.perf_counter()
        answer = client.post("/responses/input_tokens", json={"model": CHAT, "conversation": conversation,
                                                               "input": "Say hi.", "truncation": "auto"})  # fmt: skip
        ended = time.perf_counter()
        rows.append({"messages": n, "status": answer.status_code, "seconds": round(ended - began, 2),
                     "prompt_tokens": answer.json().get("input_tokens", 0),
                     "longest_healthz_wait_ms": heartbeat.longest_wait_ms(began, ended)})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def chatting(client: httpx.Client, turns: int, context: int) -> list[dict]:
    history = 2 * context // 60  # messages of about 60 tokens: twice the context
    conversation, thread = _conversation(client, history), _thread(client, history)
    assistant = client.post("/assistants", json={"model": CHAT}, headers=BETA).json()["id"]
    rows = []
    for turn in range(turns):
        question = f"Turn {turn}: " + _text(history + turn)
        began = time.perf_counter()
        answer = client.post("/responses", json={"model": CHAT, "conversation": conversation, "input": question,
                                                 "truncation": "auto", "max_output_tokens": 16}).json()  # fmt: skip
        usage = answer["usage"]
        rows.append({"kind": "responses", "turn": turn, "seconds": round(time.perf_counter() - began, 2),
                     "prompt_tokens": usage["input_tokens"],
                     "cached_tokens": usage["input_tokens_details"]["cached_tokens"]})  # fmt: skip
        print(rows[-1], flush=True)
    for turn in range(turns):
        client.post(f"/threads/{thread}/messages", json={"role": "user", "content": f"Turn {turn}: " + _text(turn)},
                    headers=BETA).raise_for_status()  # fmt: skip
        began = time.perf_counter()
        run = client.post(f"/threads/{thread}/runs", json={"assistant_id": assistant, "max_completion_tokens": 256},
                          headers=BETA).json()  # fmt: skip
        while run["status"] in ("queued", "in_progress"):
            time.sleep(0.05)
            run = client.get(f"/threads/{thread}/runs/{run['id']}", headers=BETA).json()
        usage = run.get("usage") or {}
        rows.append({"kind": "assistants", "turn": turn, "seconds": round(time.perf_counter() - began, 2),
                     "prompt_tokens": usage.get("prompt_tokens", 0), "status": run["status"]})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, nargs="*", default=[300, 1000])
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--context", type=int, default=2048)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"access_log": False})
        client = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=1800)
        heartbeat = Heartbeat(server.root)
        try:
            results["planning"] = planning(client, heartbeat, args.items)
        finally:
            heartbeat.stop()
            stop_server(server)
    if args.turns:
        from homeport.settings import DEFAULT_MODELS

        models = [m.model_dump(mode="json") | ({"context_length": args.context} if m.id == CHAT else {})
                  for m in DEFAULT_MODELS]  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            server = start_server(Path(tmp), {"access_log": False, "models": models})
            client = httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"},
                                  timeout=1800)  # fmt: skip
            try:
                results["chatting"] = chatting(client, args.turns, args.context)
            finally:
                stop_server(server)

    print("\n| planning: conversation of | status | seconds | prompt tokens kept | longest /healthz wait (ms) |")
    print("|---|---|---|---|---|")
    for r in results["planning"]:
        print(f"| {r['messages']:,} messages | {r['status']} | {r['seconds']} | {r['prompt_tokens']:,} "
              f"| {r['longest_healthz_wait_ms']} |")
    if args.turns:
        print(f"\nA long chat, context {args.context} tokens, the {args.turns - 1} turns after the first "
              "(the first turn reads its whole prompt in every version):")
        print("| history | median s a turn | total s | prompt tokens a turn (median) | cached a turn (median) |")
        print("|---|---|---|---|---|")
        for kind in ("responses", "assistants"):
            rows = [r for r in results["chatting"] if r["kind"] == kind][1:]
            cached = statistics.median(r["cached_tokens"] for r in rows) if kind == "responses" else "-"
            seconds = [r["seconds"] for r in rows]
            prompt = statistics.median(r["prompt_tokens"] for r in rows)
            print(f"| {kind} | {statistics.median(seconds):.2f} | {sum(seconds):.1f} | {prompt:.0f} | {cached} |")
    out = REPO / "bench" / "results" / "truncation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
