"""Run, step and message documents: how they are made, and what of them the API shows."""

from __future__ import annotations

from typing import Any

from ...ids import sortable_id
from ...protocol.common import Usage
from ...protocol.vector_stores import SearchResult
from .objects import Document

__all__ = [
    "add_usage",
    "cited",
    "function_calls",
    "message_document",
    "new_run_id",
    "public",
    "public_step",
    "step_document",
    "store_ids",
    "usage_of",
]


def new_run_id() -> str:
    return sortable_id("run_")


def public(run: Document) -> Document:
    """The run as the API shows it (without what Homeport keeps for itself)."""
    return {k: v for k, v in run.items() if k != "additional_instructions" and not k.startswith("_")}


def public_step(step: Document) -> Document:
    """A step as the API shows it: a file search call without the full results kept for the prompt."""
    if step["type"] != "tool_calls":
        return step
    calls = []
    for c in step["step_details"]["tool_calls"]:
        if c["type"] == "file_search":
            c = c | {"file_search": {k: v for k, v in c["file_search"].items() if k != "results_full"}}
        calls.append(c)
    return step | {"step_details": {"type": "tool_calls", "tool_calls": calls}}


def step_document(run: Document, kind: str, details: dict[str, Any]) -> Document:
    return {
        "object": "thread.run.step",
        "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"],
        "run_id": run["id"],
        "type": kind,
        "status": "in_progress",
        "step_details": details,
        "last_error": None,
        "expired_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "metadata": {},
        "usage": None,
    }


def message_document(run: Document) -> Document:
    """The assistant's message a run is writing."""
    return {
        "object": "thread.message",
        "thread_id": run["thread_id"],
        "status": "in_progress",
        "incomplete_details": None,
        "completed_at": None,
        "incomplete_at": None,
        "role": "assistant",
        "content": [],
        "assistant_id": run["assistant_id"],
        "run_id": run["id"],
        "attachments": [],
        "metadata": {},
    }


def store_ids(obj: Document) -> list[str]:
    """The vector stores an assistant's or a thread's file_search searches."""
    return list(((obj.get("tool_resources") or {}).get("file_search") or {}).get("vector_store_ids") or [])


def function_calls(step: Document) -> list[dict[str, Any]]:
    if step.get("type") != "tool_calls":
        return []
    return [c for c in step["step_details"]["tool_calls"] if c["type"] == "function"]


def usage_of(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    total = usage.prompt_tokens + usage.completion_tokens
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": total}


def add_usage(a: dict[str, int] | None, b: dict[str, int] | None) -> dict[str, int] | None:
    if a is None or b is None:
        return a or b
    return {k: a[k] + b[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def cited(text: str, sources: list[SearchResult]) -> tuple[str, list[dict[str, Any]]]:
    """The answer with a citation marker per source file (OpenAI writes `【i:j†name】` markers)."""
    annotations = []
    seen: list[str] = []
    for s in sources:
        if s.file_id not in seen:
            seen.append(s.file_id)
    value = text.rstrip()
    for i, file_id in enumerate(seen[:3]):
        name = next(s.filename for s in sources if s.file_id == file_id)
        marker = f"【{i}:0†{name}】"
        start = len(value)
        value += marker
        annotations.append({"type": "file_citation", "text": marker, "start_index": start,
                            "end_index": start + len(marker), "file_citation": {"file_id": file_id}})  # fmt: skip
    return value, annotations
