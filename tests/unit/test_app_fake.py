"""The HTTP stack in process, over the fake engines: fast checks of everything above the engine."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.spec import validate, wire
from tests.unit.conftest import FAKE_KEY


@pytest.fixture
async def fake_client(fake_app):
    transport = httpx.ASGITransport(app=fake_app)
    async with openai.AsyncOpenAI(
        base_url="http://homeport/v1", api_key=FAKE_KEY, max_retries=0,
        http_client=httpx.AsyncClient(transport=transport, base_url="http://homeport"),
    ) as client:  # fmt: skip
        yield client


@pytest.mark.anyio
async def test_chat_and_stream_shapes(fake_client) -> None:
    out = await fake_client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    validate("CreateChatCompletionResponse", wire(out))
    assert out.choices[0].finish_reason == "stop" and out.usage.completion_tokens == 24
    stream = await fake_client.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "x"}], stream=True,
        stream_options={"include_usage": True}, n=2,
    )  # fmt: skip
    chunks = [c async for c in stream]
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", wire(chunk))
    texts = {0: "", 1: ""}
    for c in chunks[:-1]:
        texts[c.choices[0].index] += c.choices[0].delta.content or ""
    assert texts[0] == texts[1] == out.choices[0].message.content  # the fake is deterministic
    assert chunks[-1].usage.completion_tokens == 48


@pytest.mark.anyio
async def test_max_tokens_gives_length(fake_client) -> None:
    out = await fake_client.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "x"}], max_tokens=3
    )
    assert out.choices[0].finish_reason == "length" and len(out.choices[0].message.content) == 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("exc", "status", "call"),
    [
        (
            openai.NotFoundError,
            404,
            lambda c: c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}]),
        ),
        (
            openai.BadRequestError,
            400,
            lambda c: c.chat.completions.create(
                model="fake-chat",
                messages=[],
            ),
        ),
        (openai.BadRequestError, 400, lambda c: c.embeddings.create(model="fake-embed", input="x", dimensions=99)),
    ],
)
async def test_error_status_maps_to_sdk_exception(fake_client, exc, status, call) -> None:
    with pytest.raises(exc) as err:
        await call(fake_client)
    assert err.value.status_code == status
    validate("ErrorResponse", err.value.response.json())


@pytest.mark.anyio
async def test_fake_embeddings_are_unit_vectors(fake_client) -> None:
    out = await fake_client.embeddings.create(model="fake-embed", input=["a", "b"], encoding_format="float")
    validate("CreateEmbeddingResponse", wire(out))
    assert len(out.data) == 2 and abs(sum(x * x for x in out.data[0].embedding) - 1) < 1e-5
