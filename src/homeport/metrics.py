"""Prometheus metrics, one registry per app (no process-global state)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "homeport_requests", "HTTP requests answered.", ["route", "method", "status", "model"], registry=r
        )
        self.latency = Histogram(
            "homeport_request_duration_seconds", "Time to the full response.", ["route", "model"],
            buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "homeport_time_to_first_token_seconds", "Streaming: time to the first chunk.", ["model"],
            buckets=_LATENCY, registry=r,
        )  # fmt: skip
        self.tokens = Counter("homeport_tokens", "Tokens processed.", ["model", "kind"], registry=r)
        self.rate_limited = Counter("homeport_rate_limited", "Requests refused by a limit.", ["reason"], registry=r)
        self.queue_depth = Gauge(
            "homeport_engine_requests", "Requests running or waiting per local engine.", ["model"], registry=r
        )

    def watch_queue(self, model: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(model).set_function(depth)

    def watch_busy(self, busy: Callable[[], dict[str, float]]) -> None:
        """Engine utilisation: rate(homeport_engine_busy_seconds_total[1m]) is the busy fraction."""
        self.registry.register(_BusyCollector(busy))

    def watch_upstreams(self, deployments: Callable[[], list[tuple[str, str, int, bool]]]) -> None:
        """Per upstream deployment: (model, deployment, outstanding requests, up)."""
        self.registry.register(_UpstreamCollector(deployments))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _BusyCollector(Collector):
    def __init__(self, busy: Callable[[], dict[str, float]]) -> None:
        self._busy = busy

    def collect(self):  # type: ignore[no-untyped-def]
        family = CounterMetricFamily(
            "homeport_engine_busy_seconds", "Seconds each local engine spent generating.", labels=["model"]
        )
        for model, seconds in self._busy().items():
            family.add_metric([model], seconds)
        yield family


class _UpstreamCollector(Collector):
    def __init__(self, deployments: Callable[[], list[tuple[str, str, int, bool]]]) -> None:
        self._deployments = deployments

    def collect(self):  # type: ignore[no-untyped-def]
        labels = ["model", "deployment"]
        outstanding = GaugeMetricFamily("homeport_upstream_requests", "Requests in flight per upstream deployment.",
                                        labels=labels)  # fmt: skip
        up = GaugeMetricFamily("homeport_upstream_up", "1 if the deployment takes requests, 0 while it rests.",
                               labels=labels)  # fmt: skip
        for model, name, count, healthy in self._deployments():
            outstanding.add_metric([model, name], count)
            up.add_metric([model, name], 1 if healthy else 0)
        yield outstanding
        yield up
