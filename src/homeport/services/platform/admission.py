"""Admission: a model call takes its token estimate from the key's budgets and one request plus
its tokens from every rate limit that applies, all or nothing; `settle` corrects the tokens once
the real count is known. Used by every model call (api/model_call.py) and by work that runs after
its request (assistant runs), so both are held to the same limits."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ...errors import AuthenticationFailed, InsufficientQuota, ModelNotFound, RateLimited
from ..inference.registry import ModelRegistry
from .alerts import BudgetAlerts
from .budgets import Budgets
from .keys import ApiKey, KeyStore
from .limits import RateLimiter, Reservation, ratelimit_headers

__all__ = ["Admission", "Admitter", "Prices"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens; a request's cost is kept in micro-dollars (integers)."""

    input: float = 0.0
    output: float = 0.0

    def split(self, prompt_tokens: int, output_tokens: int) -> tuple[int, int]:
        """(input, output) cost in micro-dollars, each rounded up."""
        return math.ceil(prompt_tokens * self.input), math.ceil(output_tokens * self.output)

    def micro_usd(self, prompt_tokens: int, output_tokens: int) -> int:
        return sum(self.split(prompt_tokens, output_tokens))


class Admission:
    """One admitted call: its rate-limit headers, and `settle` with the tokens it really used."""

    def __init__(
        self, admitter: Admitter, key: ApiKey, reservation: Reservation | None, taken: tuple[int, int], prices: Prices
    ) -> None:
        self._admitter, self._key, self._reservation = admitter, key, reservation
        self._taken = taken  # (tokens, micro-USD) taken from the key's budgets up front
        self.prices = prices

    @property
    def headers(self) -> dict[str, str]:
        return ratelimit_headers(self._reservation) if self._reservation else {}

    async def settle(self, used: tuple[int, int] | None) -> None:
        """Real (prompt, output) tokens; None (a stream cut short) keeps the reservations."""
        if used is None:
            return
        if self._reservation is not None:
            await self._admitter.limiter.settle(self._reservation, sum(used))
        if self._key.budgeted:
            extra_tokens = self._taken[0] - sum(used)
            extra_cost = self._taken[1] - self.prices.micro_usd(*used)
            await self._admitter.budgets.give_back(self._key.id, extra_tokens, extra_cost)


class Admitter:
    def __init__(
        self, registry: ModelRegistry, keys: KeyStore, budgets: Budgets, limiter: RateLimiter, alerts: BudgetAlerts
    ) -> None:
        self.registry, self.keys, self.budgets, self.limiter, self.alerts = registry, keys, budgets, limiter, alerts

    def prices(self, model: str) -> Prices:
        config = self.registry.config(model)
        return Prices(config.input_price, config.output_price)

    async def admit(self, key: ApiKey, model: str, estimate: tuple[int, int], prices: Prices) -> Admission:
        """Take the estimate from the key's budgets and one request + its tokens from every rate limit
        of the key and its project that applies to `model` (a model id, not an alias).

        Raises InsufficientQuota (a budget is spent; not retried) or RateLimited (429 + Retry-After).
        """
        tokens = sum(estimate)
        taken = (0, 0)
        if key.budgeted:
            want = (tokens, prices.micro_usd(*estimate))
            used = await self.budgets.take(key.id, *want)
            if used is None:
                self.alerts.refused(key)
                raise InsufficientQuota(
                    "You exceeded your current quota: this key's budget cannot cover this request "
                    f"(up to {tokens} tokens). Ask for a larger budget or a new key."
                )
            self.alerts.taken(key, used, want)
            taken = want
        scopes = [scope for limit in key.limits if limit.applies_to(model) for scope in limit.scopes()]
        if not scopes:
            return Admission(self, key, None, taken, prices)
        try:
            reservation = await self.limiter.reserve(scopes, tokens)
        except RateLimited:
            if key.budgeted:
                await self.budgets.give_back(key.id, *taken)
            raise
        return Admission(self, key, reservation, taken, prices)

    async def admit_key(self, key_id: str | None, model: str, estimate: tuple[int, int]) -> Admission | None:
        """For work that runs after its request (assistant runs): admit by key id, as `admit` does.
        None when the work has no key; a key revoked since raises AuthenticationFailed."""
        if key_id is None:
            return None
        key = await self.keys.load(key_id)
        if key is None or key.expired():
            raise AuthenticationFailed("The API key that started this run was revoked or has expired.")
        if not self.registry.allowed(model, key.models):
            raise ModelNotFound(model)  # the key's model allow-list holds for work run later too
        model_id = self.registry.config(model).id
        return await self.admit(key, model_id, estimate, self.prices(model_id))
