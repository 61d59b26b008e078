"""What building and serialising one streamed chat chunk costs, per chunk: Homeport's wire objects
(protocol/), the same objects with the model-wide Python serializer they had before, and the
same JSON from a plain dict with the standard library's `json.dumps` (the floor for Python).

    .venv/bin/python bench/wire_objects.py

Every streamed token becomes one such chunk on the event-loop thread, which at one stream shares
the cores with llama.cpp's decode (bench/stream_path.py). Each row: microseconds per chunk, the
median of 5 runs of 20,000, warm caches; the JSON of every row is checked to be the same bytes.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from homeport.protocol.chat import ChatChunkChoice, ChatCompletionChunk, Delta  # noqa: E402
from homeport.protocol.common import Usage  # noqa: E402


class _WrapOmitting(BaseModel):
    """The serializer the wire objects had: the whole model to a dict in Python, then nulls cut."""

    omit: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_nones(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        for name in self.omit:
            if data.get(name, 0) is None:
                del data[name]
        return data


def _wrapped() -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    class OldDelta(_WrapOmitting):
        omit = frozenset({"role", "content", "refusal", "tool_calls"})
        role: str | None = None
        content: str | None = None
        refusal: str | None = None
        tool_calls: list[dict[str, Any]] | None = None

    class OldChoice(BaseModel):
        index: int
        delta: OldDelta
        logprobs: dict[str, Any] | None = None
        finish_reason: str | None = None

    class OldChunk(_WrapOmitting):
        omit = frozenset({"usage"})
        id: str
        object: str = "chat.completion.chunk"
        created: int
        model: str
        choices: list[OldChoice]
        usage: Usage | None = None
        system_fingerprint: str
        service_tier: str | None = "default"

    return OldChunk, OldChoice, OldDelta


def _us(make: Callable[[], str], n: int = 20_000) -> float:
    for _ in range(500):
        make()
    runs = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(n):
            make()
        runs.append((time.perf_counter() - began) / n * 1e6)
    return statistics.median(runs)


def main() -> None:
    common = {"id": "chatcmpl-0123456789abcdef01234567", "created": int(time.time()), "model": "smollm2-135m-instruct",
              "system_fingerprint": "fp_0123456789"}  # fmt: skip
    chunk = partial(ChatCompletionChunk, **common)
    old_chunk, old_choice, old_delta = _wrapped()
    old = partial(old_chunk, **common)

    def homeport() -> str:
        return chunk(choices=[ChatChunkChoice(index=0, delta=Delta(content=" word"))]).model_dump_json()

    def wrapped() -> str:
        return old(choices=[old_choice(index=0, delta=old_delta(content=" word"))]).model_dump_json()

    def plain() -> str:
        body = {"id": common["id"], "object": "chat.completion.chunk", "created": common["created"],
                "model": common["model"],
                "choices": [{"index": 0, "delta": {"content": " word"}, "logprobs": None, "finish_reason": None}],
                "system_fingerprint": common["system_fingerprint"], "service_tier": "default"}  # fmt: skip
        return json.dumps(body, separators=(",", ":"))

    rows = {"Homeport's wire objects (per-field exclude_if)": homeport,
            "the same with the model-wide wrap serializer (before)": wrapped,
            "a dict and json.dumps": plain}  # fmt: skip
    assert len({make() for make in rows.values()}) == 1, "the rows must write the same JSON"
    print("| one streamed chunk, built and serialised | µs |\n|---|---|")
    for name, make in rows.items():
        print(f"| {name} | {_us(make):.2f} |")


if __name__ == "__main__":
    main()
