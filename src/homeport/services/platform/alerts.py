"""Budget alerts: a log line, and a POST to the configured webhook, when a key's use crosses
50% and 80% of its token or cost budget, and when a request is first refused for a spent one."""

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

    def taken(self, key: ApiKey, used: tuple[int, int], taken: tuple[int, int]) -> None:
        """After a successful budget take of (tokens, micro-USD): alert on each threshold crossed."""
        for kind, limit, now, add in (
            ("tokens", key.budget_tokens, used[0], taken[0]),
            ("usd", key.budget_micro_usd, used[1], taken[1]),
        ):
            for share in THRESHOLDS:
                if limit and now - add < share * limit <= now:
                    self._send(key, kind, share, now, limit)

    def refused(self, key: ApiKey) -> None:
        """After a refusal for an empty budget: alert once per key (per process)."""
        if key.id not in self._exhausted:
            self._exhausted.add(key.id)
            kind, limit = (
                ("tokens", key.budget_tokens) if key.budget_tokens is not None else ("usd", key.budget_micro_usd)
            )
            self._send(key, kind, 1.0, limit or 0, limit or 0)

    def _send(self, key: ApiKey, kind: str, share: float, used: int, limit: int) -> None:
        scale = 1e-6 if kind == "usd" else 1  # cost budgets are kept in micro-dollars
        event = {
            "type": "budget.threshold",
            "budget": kind,
            "threshold": share,
            "key_id": key.id,
            "project_id": key.project_id,
            "used": used * scale,
            "limit": limit * scale,
            "ts": int(time.time()),
        }
        log.warning("key %s reached %d%% of its %s budget (%s of %s)", key.id, 100 * share, kind, event["used"],
                    event["limit"], extra={"key_id": key.id, "project_id": key.project_id})  # fmt: skip
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
