"""GET /metrics: Prometheus text with requests, latency, tokens, TTFT, queue depth, engine busy time,
refusals, the process and its garbage collector."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families


def _samples(server) -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"{server.root}/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_what_happened(server, client) -> None:
    before = _samples(server)
    out = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    list(client.chat.completions.create(model="smollm2-135m-instruct", stream=True, max_tokens=3,
                                        messages=[{"role": "user", "content": "hey"}]))  # fmt: skip
    after = _samples(server)
    route = {"route": "/v1/chat/completions", "method": "POST", "status": "200", "model": "smollm2-135m-instruct"}
    key = ("homeport_requests_total", tuple(sorted(route.items())))
    assert after[key] - before.get(key, 0) == 2
    prompt = ("homeport_tokens_total", (("kind", "prompt"), ("model", "smollm2-135m-instruct")))
    assert after[prompt] - before.get(prompt, 0) >= out.usage.prompt_tokens
    ttft = ("homeport_time_to_first_token_seconds_count", (("model", "smollm2-135m-instruct"),))
    assert after[ttft] - before.get(ttft, 0) == 1
    assert ("homeport_engine_requests", (("model", "smollm2-135m-instruct"),)) in after
    busy = ("homeport_engine_busy_seconds_total", (("model", "smollm2-135m-instruct"),))
    assert after[busy] > before.get(busy, 0)  # rate() of it is the engine's utilisation
    assert any(name == "homeport_request_duration_seconds_bucket" for name, _ in after)


def test_the_server_freezes_what_start_up_built_out_of_the_garbage_collector(server) -> None:
    # Once the models are loaded (api/server.py); /readyz may answer just before, so wait for it.
    deadline = time.monotonic() + 120
    while (frozen := _samples(server)[("homeport_python_frozen_objects", ())]) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert frozen > 50_000  # modules, schemas, models: about 200,000 objects
    samples = _samples(server)
    assert ("python_gc_collections_total", (("generation", "2"),)) in samples
