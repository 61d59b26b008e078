"""Models served by other OpenAI-compatible servers: the request passes through Homeport's
gateway (auth, limits, budgets, usage, metrics) to a deployment and its answer comes back as the
upstream wrote it (with `model` set to the id the client asked for).

Usage: the upstream's `usage` when it reports one (streams ask for it with
`stream_options.include_usage` and Homeport drops that extra chunk if the client did not ask);
otherwise prompt tokens are estimated (4 characters a token) and streamed tokens counted, one per
content chunk.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ... import tracing
from ...backends.upstream import Exhausted, UpstreamPool
from ...errors import ModelNotFound
from ...protocol.common import Usage
from .registry import ModelRegistry

__all__ = ["UpstreamService", "Raw", "RelayPlan"]

log = logging.getLogger(__name__)

_DEFAULT_OUTPUT = 1024  # reserved against limits when a request names no max_tokens


class Raw:
    """An upstream's JSON object, relayed as is (what model_call.respond and the SSE encoder need)."""

    def __init__(self, data: dict[str, Any], usage: Usage | None = None) -> None:
        self.data, self.usage = data, usage

    def model_dump_json(self) -> str:
        return json.dumps(self.data)

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return self.data


@dataclass
class RelayPlan:
    request: dict[str, Any]
    models: list[str]  # the model and its fallbacks
    client_model: str
    estimate: tuple[int, int]
    usage: Usage | None = None
    wants_usage: bool = False
    counted: list[int] = field(default_factory=lambda: [0])


class UpstreamService:
    def __init__(self, path: str, registry: ModelRegistry, pools: dict[str, UpstreamPool]) -> None:
        self._path, self._registry, self._pools = path, registry, pools
        self._embeddings = path.endswith("/embeddings")

    def handles(self, model: str) -> bool:
        try:
            return self._registry.config(model).backend == "upstream"
        except ModelNotFound:
            return False

    async def plan(self, body: Any, project_id: str | None = None, key_id: str | None = None) -> RelayPlan:
        config = self._registry.config(body.model)
        request = body.model_dump(mode="json", exclude_unset=True, by_alias=True)
        text = json.dumps(request.get("messages") or request.get("prompt") or request.get("input") or "")
        prompt = math.ceil(len(text) / 4)
        output = 0 if self._embeddings else (request.get("max_completion_tokens") or request.get("max_tokens")
                                             or _DEFAULT_OUTPUT) * (request.get("n") or 1)  # fmt: skip
        models = [config.id, *(m for m in config.fallbacks if m in self._pools)]
        wants = bool((request.get("stream_options") or {}).get("include_usage"))
        return RelayPlan(request, models, body.model, (prompt, output), wants_usage=wants)

    async def _first_answering(self, plan: RelayPlan, call: Callable[[UpstreamPool], Awaitable[Any]]) -> Any:
        for i, model in enumerate(plan.models):
            try:
                with tracing.span("upstream.call", **{"homeport.model": model, "homeport.endpoint": self._path}):
                    return await call(self._pools[model])
            except Exhausted:
                if i == len(plan.models) - 1:
                    raise
                log.warning("model %s unavailable upstream; falling back to %s", model, plan.models[i + 1])
        raise AssertionError("unreachable")

    async def create(self, plan: RelayPlan) -> Raw:
        data = await self._first_answering(plan, lambda pool: pool.post(self._path, plan.request))
        data["model"] = plan.client_model
        reported = data.get("usage") or {}
        if "prompt_tokens" in reported:
            usage = Usage.of(int(reported["prompt_tokens"]), int(reported.get("completion_tokens") or 0))
        else:
            texts = [c.get("message", {}).get("content") or c.get("text") or "" for c in data.get("choices", [])]
            usage = Usage.of(plan.estimate[0], sum(math.ceil(len(t) / 4) for t in texts))
        return Raw(data, usage)

    async def stream(self, plan: RelayPlan) -> AsyncIterator[Raw]:
        request = plan.request | {"stream": True, "stream_options": {"include_usage": True}}
        events = await self._first_answering(plan, lambda pool: _started(pool.stream(self._path, request)))
        completion = 0
        try:
            async for event in events:
                event["model"] = plan.client_model
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content") or delta.get("tool_calls") or choice.get("text"):
                        completion += 1
                reported = event.get("usage")
                if reported and "prompt_tokens" in reported:
                    plan.usage = Usage.of(int(reported["prompt_tokens"]), int(reported.get("completion_tokens") or 0))
                    if not event.get("choices") and not plan.wants_usage:
                        continue  # the usage chunk Homeport asked for, not the client
                    if not plan.wants_usage:
                        event.pop("usage", None)
                yield Raw(event)
        finally:
            await events.aclose()
        if plan.usage is None:
            plan.usage = Usage.of(plan.estimate[0], completion)


async def _started(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Wait for the first event (so failures before it can still be retried or fall back), then
    return an iterator over all of them."""
    first = await anext(events)

    async def chained() -> AsyncIterator[dict[str, Any]]:
        try:
            yield first
            async for event in events:
                yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    return chained()
