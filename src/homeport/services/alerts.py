"""Budget alerts: a log line, and a POST to the configured webhook, when a key's used tokens
cross 50% and 80% of its budget, and when a request is first refused for an empty budget."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from .keys import ApiKey

__all__ = ["BudgetAlerts", "THRESHOLDS"]

log = logging.getLogger("homeport.alerts")
THRESHOLDS = (0.5, 0.8)


class BudgetAlerts:
    def __init__(self, webhook_url: str | None) -> None:
        self._url = webhook_url
        self._http = httpx.AsyncClient(timeout=5) if webhook_url else None
        self._exhausted: set[str] = set()
        self._pending: set[asyncio.Task[None]] = set()

    def taken(self, key: ApiKey, used: int, tokens: int) -> None:
        """After a successful budget take: alert on each threshold this take crossed."""
        budget = key.budget_tokens or 0
        for share in THRESHOLDS:
            if used - tokens < share * budget <= used:
                self._send(key, share, used)

    def refused(self, key: ApiKey) -> None:
        """After a refusal for an empty budget: alert once per key (per process)."""
        if key.id not in self._exhausted:
            self._exhausted.add(key.id)
            self._send(key, 1.0, key.budget_tokens or 0)

    def _send(self, key: ApiKey, share: float, used: int) -> None:
        event = {
            "type": "budget.threshold",
            "threshold": share,
            "key_id": key.id,
            "project_id": key.project_id,
            "used_tokens": used,
            "budget_tokens": key.budget_tokens,
            "ts": int(time.time()),
        }
        log.warning("key %s reached %d%% of its token budget (%s of %s)", key.id, 100 * share, used,
                    key.budget_tokens, extra={"key_id": key.id, "project_id": key.project_id})  # fmt: skip
        if self._http is not None:
            task = asyncio.create_task(self._post(event))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _post(self, event: dict) -> None:
        assert self._http is not None and self._url is not None
        try:
            await self._http.post(self._url, json=event)
        except httpx.HTTPError as exc:  # an unreachable webhook must not fail requests
            log.error("budget alert webhook failed: %s", exc)

    async def close(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
