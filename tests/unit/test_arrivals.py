"""Model requests on their way to an engine (backends.base.Arrivals, api/middleware.py's
ArrivalMiddleware): counted from arrival to hand-over, never left counted."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from homeport.backends.base import Arrivals, arrivals
from homeport.backends.llamacpp import batching
from tests.unit.conftest import FAKE_KEY


def test_a_request_counts_until_handed_over_or_done() -> None:
    counter = Arrivals()
    with counter.arriving():
        assert counter.pending() == 1
        counter.handed_over()
        assert counter.pending() == 0
        counter.handed_over()  # once only
        assert counter.pending() == 0
    assert counter.pending() == 0
    with counter.arriving(), counter.arriving():  # two at once; neither handed over
        assert counter.pending() == 2
    assert counter.pending() == 0
    counter.handed_over()  # outside a request: nothing
    assert counter.pending() == 0


def test_a_body_still_uploading_is_not_counted() -> None:
    counter = Arrivals()
    with counter.arriving() as reading:
        reading(True)
        assert counter.pending() == 0
        reading(True)
        assert counter.pending() == 0
        reading(False)  # the last of the body is in
        assert counter.pending() == 1
    assert counter.pending() == 0
    with counter.arriving() as reading:
        counter.handed_over()
        reading(False)  # after the hand-over: stays settled
        assert counter.pending() == 0


@pytest.mark.anyio
async def test_no_model_call_is_left_counted(fake_app) -> None:
    transport = httpx.ASGITransport(app=fake_app)
    http = httpx.AsyncClient(transport=transport, base_url="http://homeport")
    client = openai.AsyncOpenAI(base_url="http://homeport/v1", api_key=FAKE_KEY, max_retries=0, http_client=http)
    messages = [{"role": "user", "content": "x"}]
    async with client:
        await client.chat.completions.create(model="fake-chat", messages=messages)  # type: ignore[arg-type]
        _, engine = fake_app.state.registry.chat("fake-chat")
        seen: list[int] = []
        generate = engine.generate

        def watched(request):  # type: ignore[no-untyped-def]
            seen.append(arrivals.pending())
            return generate(request)

        engine.generate = watched
        service = fake_app.state.model_services["/v1/chat/completions"].local
        plan = service.plan

        async def planned(*args):  # type: ignore[no-untyped-def]
            seen.append(arrivals.pending())
            return await plan(*args)

        service.plan = planned
        stream = await client.chat.completions.create(model="fake-chat", messages=messages, stream=True)  # type: ignore[arg-type]
        _ = [chunk async for chunk in stream]
        assert seen == [1, 0]  # counted while planned; handed over by the time it reaches the engine
        await client.embeddings.create(model="fake-embed", input="x")
        for call in (
            lambda: client.chat.completions.create(model="nope", messages=messages),  # type: ignore[arg-type]
            lambda: client.chat.completions.create(model="fake-chat", messages=[]),
        ):
            with pytest.raises(openai.APIStatusError):
                await call()
        refused = await http.post("/v1/chat/completions", json={"model": "fake-chat", "messages": messages},
                                  headers={"authorization": "Bearer sk-wrong"})  # fmt: skip
        assert refused.status_code == 401

        async def slowly() -> AsyncIterator[bytes]:  # a chunked body, in pieces
            yield b'{"model": "fake-chat", '
            yield b'"messages": [{"role": "user", "content": "x"}]}'

        headers = {"authorization": f"Bearer {FAKE_KEY}", "content-type": "application/json"}
        chunked = await http.post("/v1/chat/completions", content=slowly(), headers=headers)
        assert chunked.status_code == 200
    assert arrivals.pending() == 0


class _Waiting:
    """What batching._gather reads of a scheduler: its queue of waiting requests."""

    def __init__(self, n: int) -> None:
        self._waiting = [object()] * n


def test_a_burst_waits_a_moment_for_its_last_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting from idle with several requests waiting, the driver waits for one more that comes on
    its way within _BURST_S, until it is handed over; with one waiting it does not wait at all. (The
    windows are stretched to seconds, so that nothing depends on this machine's speed.)"""
    monkeypatch.setattr(batching, "_GATHER_S", 120.0)
    monkeypatch.setattr(batching, "_BURST_S", 60.0)
    began = time.monotonic()
    batching._gather([_Waiting(1)])  # type: ignore[list-item]
    assert time.monotonic() - began < 30  # returned at once, not after _BURST_S

    monkeypatch.setattr(batching, "_BURST_S", 2.0)  # after the last arrival, it waits this long for another
    listening, wait_for_some = threading.Event(), arrivals.wait_for_some

    def listen(timeout: float) -> bool:
        listening.set()
        return wait_for_some(timeout)

    monkeypatch.setattr(arrivals, "wait_for_some", listen)
    events: list[str] = []

    def gather() -> None:
        batching._gather([_Waiting(2)])  # type: ignore[list-item]
        events.append("started")

    gatherer = threading.Thread(target=gather)
    gatherer.start()
    assert listening.wait(timeout=60)  # two waiting: it waits for more
    with arrivals.arriving():
        events.append("arrived")
        arrivals.handed_over()
        events.append("handed over")
    gatherer.join(timeout=60)
    assert events == ["arrived", "handed over", "started"]
