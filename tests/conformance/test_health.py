"""Operator endpoints: /healthz while the process lives, /readyz once models are loaded."""

from __future__ import annotations

import httpx


def test_healthz_and_readyz(server) -> None:
    assert httpx.get(f"{server.root}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.root}/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["models"]) == {"smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2",
                                           "homeport-moderation", "whisper-base", "whisper-tiny-en", "piper-joe"}
    assert ready.headers["x-request-id"]


def test_request_id_is_echoed(server) -> None:
    r = httpx.get(f"{server.root}/healthz", headers={"x-request-id": "my-trace-1"})
    assert r.headers["x-request-id"] == "my-trace-1"


def test_gemma_base_model_serves_chat(client) -> None:
    out = client.chat.completions.create(
        model="gemma-3-270m", messages=[{"role": "user", "content": "Hello"}], max_tokens=8
    )
    assert out.choices[0].message.content is not None and out.usage.prompt_tokens > 3
