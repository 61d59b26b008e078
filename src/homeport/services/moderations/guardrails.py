"""Moderation guardrails: a project that opts in has the inputs, the outputs or both of its chat,
completions and responses calls moderated (`homeport projects set NAME --moderate both
--moderation-action block|flag`).

- `block`: a flagged input is refused before any token is generated or any limit is touched
  (400 `content_policy_violation`, naming the categories); a flagged output is withheld (the same
  error); a flagged stream is cut with that error event.
- `flag`: the request is served and recorded: the usage record's `flagged`, the usage report's
  `num_flagged_requests`, an audit log entry (`moderation.flagged`) and a metric.

Streams are checked sentence by sentence as they go (the moderation model scores sentences, so
checking each once equals checking the whole text): the chunk that completes a sentence is held
until its check passes, so a block stops the stream before the next sentence starts.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ...errors import ContentPolicyViolation
from ..platform.audit import Actor, AuditLog
from ..platform.projects import Project
from .service import ModerationService

__all__ = ["Guardrails", "Screen", "streamed_text"]

_SENTENCE_END = re.compile(r"[.!?\n][\"')\]]*\s")
_LONGEST_UNCHECKED = 400
"""Characters a stream may carry without a sentence end before they are checked anyway."""


@dataclass
class Screen:
    """One request's guardrail: what it checks, and whether anything was flagged."""

    guardrails: Guardrails
    project: Project
    key_id: str | None
    request_id: str | None
    flagged: bool = False

    @property
    def inputs(self) -> bool:
        return self.project.moderate in ("input", "both")

    @property
    def outputs(self) -> bool:
        return self.project.moderate in ("output", "both")

    async def check(self, side: str, texts: list[str], param: str | None = None) -> None:
        texts = [t for t in texts if t.strip()]
        if not texts:
            return
        results = await self.guardrails.moderations.check(self.guardrails.model, texts)
        categories = sorted({c for r in results for c, hit in r.categories.items() if hit})
        if not categories:
            return
        self.flagged = True
        action = self.project.moderation_action
        await self.guardrails.record(self, side, categories, action)
        if action == "block":
            what = "request" if side == "input" else "model's output"
            raise ContentPolicyViolation(
                f"This {what} was flagged by the project's moderation guardrail ({', '.join(categories)}) "
                f"and was {'not processed' if side == 'input' else 'withheld'}.",
                param=param,
            )

    async def check_request(self, body: Any) -> None:
        if self.inputs:
            await self.check("input", request_texts(body), _input_param(body))

    async def check_result(self, result: Any) -> None:
        if self.outputs:
            await self.check("output", result_texts(result.model_dump(mode="json")))

    async def check_stream(self, chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if not self.outputs:
            async for chunk in chunks:
                yield chunk
            return
        pending: dict[int, str] = {}
        async for chunk in chunks:
            for index, text in streamed_text(chunk):
                pending[index] = pending.get(index, "") + text
                done = _checkable(pending[index])
                if done:
                    await self.check("output", [pending[index][:done]])
                    pending[index] = pending[index][done:]
            yield chunk
        await self.check("output", list(pending.values()))


class Guardrails:
    def __init__(self, moderations: ModerationService, audit: AuditLog, flags: Any, model: str) -> None:
        self.moderations, self._audit, self._flags, self.model = moderations, audit, flags, model

    def screen(self, project: Project | None, key_id: str | None, request_id: str | None) -> Screen | None:
        """The request's screen, if its project moderates anything."""
        if project is None or project.moderate is None:
            return None
        return Screen(self, project, key_id, request_id)

    async def record(self, screen: Screen, side: str, categories: list[str], action: str) -> None:
        self._flags.labels(side, action).inc()
        project = screen.project
        await self._audit.record("moderation.flagged", Actor(key_id=screen.key_id), screen.request_id or "",
                                 {"side": side, "categories": categories, "action": action},
                                 project=(project.id, project.name))  # fmt: skip


def _checkable(text: str) -> int:
    """How much of a stream's unchecked text ends in a complete sentence (0: wait for more)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends:
        return ends[-1]
    return len(text) if len(text) >= _LONGEST_UNCHECKED else 0


def _input_param(body: Any) -> str | None:
    return next((name for name in ("messages", "prompt", "input") if getattr(body, name, None) is not None), None)


def request_texts(body: Any) -> list[str]:
    """The text a request sends the model: messages, prompt, input items, instructions."""
    data = body.model_dump(mode="json", exclude_none=True)
    texts: list[str] = []
    for field in ("messages", "prompt", "input", "instructions"):
        _collect(data.get(field), texts)
    return texts


def result_texts(data: dict[str, Any]) -> list[str]:
    """The text a model answered: choices' messages or texts, a response's output items."""
    texts: list[str] = []
    for field in ("choices", "output"):
        _collect(data.get(field), texts)
    return texts


_TEXT_KEYS = ("content", "text", "output", "arguments")


def _collect(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, into)
    elif isinstance(value, dict):
        for key in _TEXT_KEYS:
            if key in value:
                _collect(value[key], into)
        if "message" in value:
            _collect(value["message"], into)


def streamed_text(chunk: Any) -> list[tuple[int, str]]:
    """(choice or output index, text) pairs a streamed chunk or Responses event carries."""
    event = getattr(chunk, "data", None)
    if isinstance(event, dict) and event.get("type") == "response.output_text.delta":
        return [(event["output_index"], event["delta"])]
    found = []
    for choice in getattr(chunk, "choices", None) or []:
        delta = getattr(choice, "delta", None)
        text = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
        if text:
            found.append((choice.index, text))
    return found

