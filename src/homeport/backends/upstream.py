"""Deployments of a model on OpenAI-compatible servers: balancing, failure handling, retries.

A pool picks the healthy deployment with the fewest outstanding requests. A deployment that
fails (connection error, timeout, 429 or 5xx) rests for `cooldown_s` (or the `Retry-After` it
sent) and the request is retried on the next best one, up to `retries` more attempts; a 4xx
other than 429 is the client's problem and goes back as it came. When every attempt fails the
caller (services/upstream.py) moves on to the model's fallbacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import EngineOverloaded, HomeportError, InvalidRequest
from ..settings import ModelConfig, UpstreamDeployment
from . import anthropic_wire

__all__ = ["UpstreamPool", "UpstreamError", "Deployment"]

log = logging.getLogger(__name__)

RETRYABLE = {408, 409, 429, 500, 502, 503, 504, 529}  # 529: Anthropic's "overloaded"
MAX_RETRY_AFTER_S = 10.0  # longer than this: try another deployment instead of waiting


class UpstreamError(HomeportError):
    """An upstream's own error answer (a 4xx), passed to the client with its status and body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        found = body.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        super().__init__(str(error.get("message") or f"upstream answered {status}"), param=error.get("param"),
                         code=error.get("code"))  # fmt: skip
        self.status = status
        self.type = str(error.get("type") or "invalid_request_error")


@dataclass
class Deployment:
    config: UpstreamDeployment
    model: str
    outstanding: int = 0
    resting_until: float = 0.0
    retry_at: float = 0.0  # when its last Retry-After said to come back
    failures: int = 0

    @property
    def name(self) -> str:
        return f"{self.config.base_url}#{self.model}"

    @property
    def anthropic(self) -> bool:
        return self.config.protocol == "anthropic"

    def url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    def headers(self) -> dict[str, str]:
        key = self.config.api_key.get_secret_value() if self.config.api_key else None
        if self.anthropic:
            return {"anthropic-version": anthropic_wire.ANTHROPIC_VERSION} | ({"x-api-key": key} if key else {})
        return {"authorization": f"Bearer {key}"} if key else {}

    def wire(self, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body to send for `path` (an OpenAI path) and its request body."""
        if not self.anthropic:
            return self.url(path), body | {"model": self.model}
        if path != "/chat/completions":
            raise InvalidRequest(f"This model is served by an Anthropic upstream, which takes chat completions, "
                                 f"not {path}.", param="model")  # fmt: skip
        return self.url("/messages"), anthropic_wire.to_messages(body) | {"model": self.model}


class _Retryable(Exception):
    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class UpstreamPool:
    def __init__(self, config: ModelConfig, client: httpx.AsyncClient) -> None:
        self.model_id = config.id
        self.deployments = [Deployment(d, d.model or config.id) for d in config.upstreams]
        self._client, self._retries, self._cooldown_s = client, config.retries, config.cooldown_s
        self._health_s = config.health_check_s

    def states(self) -> list[tuple[str, str, int, bool]]:
        """(model, deployment, outstanding requests, up) for /metrics."""
        now = time.monotonic()
        return [(self.model_id, d.name, d.outstanding, d.resting_until <= now) for d in self.deployments]

    async def check_health(self) -> None:
        """Active checks: GET /models on each deployment. A failing one rests; one that answers
        again after failing is back at once (without waiting out its cooldown)."""

        async def probe(d: Deployment) -> None:
            try:
                r = await self._client.get(d.config.base_url.rstrip("/") + "/models", headers=d.headers(),
                                           timeout=min(5.0, d.config.timeout_s))  # fmt: skip
                healthy = r.status_code < 500
            except httpx.HTTPError:
                healthy = False
            if healthy and d.resting_until > time.monotonic() and not d.retry_at:
                d.resting_until, d.failures = 0.0, 0
                log.info("upstream %s answers again", d.name)
            elif not healthy:
                self._failed(d, "health check failed", None)

        await asyncio.gather(*(probe(d) for d in self.deployments))

    async def watch(self) -> None:
        """Run the active checks every `health_check_s` (a task per pool, for the app's lifetime)."""
        if not self._health_s:
            return
        while True:
            await asyncio.sleep(self._health_s)
            try:
                await self.check_health()
            except Exception:  # the next round tries again
                log.exception("health checks of %s failed", self.model_id)

    def pick(self, tried: set[str]) -> Deployment | None:
        """The healthy deployment with the fewest outstanding requests (resting ones only if none is healthy)."""
        now = time.monotonic()
        fresh = [d for d in self.deployments if d.name not in tried]
        healthy = [d for d in fresh if d.resting_until <= now]
        candidates = healthy or sorted(fresh, key=lambda d: d.resting_until)[:1]
        return min(candidates, key=lambda d: d.outstanding) if candidates else None

    def _failed(self, d: Deployment, why: str, retry_after: float | None) -> None:
        d.failures += 1
        now = time.monotonic()
        d.resting_until = now + (self._cooldown_s if retry_after is None else retry_after)
        d.retry_at = now + retry_after if retry_after is not None else 0.0
        log.warning("upstream %s failed (%s); resting %.1fs", d.name, why, d.resting_until - now)

    async def _attempts(self) -> AsyncIterator[Deployment]:
        """Deployments to try in turn: at most 1 + retries. Between attempts, the wait its
        Retry-After asked for (up to MAX_RETRY_AFTER_S), else a short exponential backoff. When
        every deployment rests, the one whose rest ends first is tried anyway (it may be back)."""
        tried: set[str] = set()
        for attempt in range(1 + self._retries):
            d = self.pick(tried if len(tried) < len(self.deployments) else set())
            if d is None:
                return
            wait = d.retry_at - time.monotonic()
            if 0 < wait <= MAX_RETRY_AFTER_S:
                await asyncio.sleep(wait)
            elif attempt:
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            tried.add(d.name)
            yield d

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to a deployment; retried on retryable failures. Raises Exhausted when none answered."""
        last = "no deployments"
        async for d in self._attempts():
            url, wire = d.wire(path, body)
            d.outstanding += 1
            try:
                response = await self._client.post(url, json=wire, headers=d.headers(), timeout=d.config.timeout_s)
                _check(response)
                answer = _answer(response.content)
                d.failures = 0
                return anthropic_wire.to_completion(answer) if d.anthropic else answer
            except (_Retryable, httpx.HTTPError) as exc:
                last = self._failure(d, exc)
            finally:
                d.outstanding -= 1
        raise Exhausted(self.model_id, last)

    def _failure(self, d: Deployment, exc: Exception) -> str:
        """Rest a deployment after a retryable failure; returns what went wrong."""
        if isinstance(exc, _Retryable):
            self._failed(d, str(exc), exc.retry_after)
            return str(exc)
        why = f"{type(exc).__name__}: {exc}"
        self._failed(d, why, None)
        return why

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The upstream's SSE events as dicts. Failures before the first event are retried like
        `post`; after it, the stream ends with an EngineError (the client sees an error event)."""
        last = "no deployments"
        async for d in self._attempts():
            url, wire = d.wire(path, body)
            d.outstanding += 1
            started = False
            try:
                request = self._client.build_request(
                    "POST", url, json=wire, headers=d.headers(),
                    timeout=httpx.Timeout(d.config.timeout_s, connect=min(10.0, d.config.timeout_s)),
                )  # fmt: skip
                response = await self._client.send(request, stream=True)
                try:
                    if response.status_code >= 400:
                        await response.aread()
                    _check(response)
                    events = anthropic_wire.chunks(_anthropic_events(response)) if d.anthropic else _events(response)
                    async for event in events:
                        started = True
                        yield event
                    d.failures = 0
                    return
                finally:
                    await response.aclose()
            except (_Retryable, httpx.HTTPError) as exc:
                last = self._failure(d, exc)
                if started:
                    raise HomeportError(f"The upstream server for `{self.model_id}` failed mid-stream: {last}") from exc
            finally:
                d.outstanding -= 1
        raise Exhausted(self.model_id, last)


class Exhausted(EngineOverloaded):
    """Every attempt on every deployment failed (the caller may fall back to another model)."""

    def __init__(self, model_id: str, last: str) -> None:
        super().__init__(f"No upstream server for `{model_id}` is answering (last: {last}).", retry_after=5)
        self.model_id = model_id


async def _events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """An OpenAI-style stream's `data:` objects, up to its [DONE]."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        event = _answer(data)
        if "error" in event:
            raise UpstreamError(500, event)
        yield event
    raise httpx.RemoteProtocolError("the stream ended without [DONE]")


async def _anthropic_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """An Anthropic stream's events as (type, data), up to its message_stop."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        event = _answer(line[5:].strip())
        kind = str(event.get("type") or "")
        if kind == "error":
            error = event.get("error") or {}
            if error.get("type") == "overloaded_error":
                raise _Retryable("overloaded")
            raise UpstreamError(500, event)
        yield kind, event
        if kind == "message_stop":
            return
    raise httpx.RemoteProtocolError("the stream ended without message_stop")


def _check(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    if response.status_code in RETRYABLE:
        raise _Retryable(f"HTTP {response.status_code}", _retry_after(response))
    try:
        body = response.json()
    except ValueError:
        body = {"error": {"message": response.text[:500]}}
    raise UpstreamError(response.status_code, body if isinstance(body, dict) else {})


def _answer(raw: bytes | str) -> dict[str, Any]:
    """A JSON object, or a retryable failure of the deployment (a proxy's HTML page, a cut body)."""
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise _Retryable(f"not a JSON object: {raw[:80]!r}")
    return answer


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds <= MAX_RETRY_AFTER_S else None
