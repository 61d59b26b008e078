"""Prometheus metrics, one registry per app (no process-global state)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
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
        self.moderation_flags = Counter("homeport_moderation_flagged", "Requests a project's moderation guardrail "
                                        "flagged, by side (input/output) and action.", ["side", "action"],
                                        registry=r)  # fmt: skip
        self.queue_depth = Gauge(
            "homeport_engine_requests", "Requests running or waiting per local engine.", ["model"], registry=r
        )

    def watch_process(self, db_connections: Callable[[], int]) -> None:
        """The process's resources, read at scrape time: RSS, CPU and open files (Prometheus's
        standard `process_*`), Python's garbage collections (`python_gc_*`) and the objects frozen
        out of them (api/server.py), asyncio tasks, and database connections checked out of the pool."""
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        Gauge("homeport_python_frozen_objects", "Objects left out of Python's garbage collector (frozen at start-up).",
              registry=self.registry).set_function(gc.get_freeze_count)  # fmt: skip
        Gauge("homeport_asyncio_tasks", "asyncio tasks alive in the server's event loop.",
              registry=self.registry).set_function(lambda: len(asyncio.all_tasks()))  # fmt: skip
        Gauge("homeport_db_connections", "Database connections in use (checked out of the pool).",
              registry=self.registry).set_function(db_connections)  # fmt: skip

    def watch_queue(self, model: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(model).set_function(depth)

    def watch_engines(self, stats: Callable[[], dict[str, dict[str, float]]]) -> None:
        """Local engines' counters (see `_EngineCollector`), read at scrape time."""
        self.registry.register(_EngineCollector(stats))

    def watch_upstreams(self, deployments: Callable[[], list[tuple[str, str, int, bool]]]) -> None:
        """Per upstream deployment: (model, deployment, outstanding requests, up)."""
        self.registry.register(_UpstreamCollector(deployments))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    """Per local engine: rate(busy_seconds) is utilisation, rate(generated_tokens) is output tok/s,
    rate(batch_tokens) / rate(decode_steps) is the mean batch size."""

    COUNTERS = {
        "busy_seconds": "Seconds the engine spent decoding.",
        "generated_tokens": "Tokens the engine sampled.",
        "decode_steps": "llama.cpp decode calls (one batch each).",
        "batch_tokens": "Tokens evaluated in those batches (prompt and generated).",
        "preemptions": "Batch-line sequences that gave their slot to an interactive request.",
    }
    GAUGES = {"slots_busy": "Slots decoding a request now.", "queue_depth": "Requests waiting for a slot."}

    def __init__(self, stats: Callable[[], dict[str, dict[str, float]]]) -> None:
        self._stats = stats

    def collect(self):  # type: ignore[no-untyped-def]
        stats = self._stats()
        for name, text in (*self.COUNTERS.items(), *self.GAUGES.items()):
            kind = CounterMetricFamily if name in self.COUNTERS else GaugeMetricFamily
            family = kind(f"homeport_engine_{name}", text, labels=["model"])
            for model, values in stats.items():
                if name in values:
                    family.add_metric([model], values[name])
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
