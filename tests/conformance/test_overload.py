"""A busy engine with a full queue answers 503 + Retry-After (the SDK retries it) and recovers."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import API_KEY, start_server, stop_server
from tests.spec import validate


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory: pytest.TempPathFactory):
    config = {"load_models": ["smollm2-135m-instruct"], "engine": {"slots": 1, "queue_size": 0, "retry_after_s": 1}}
    server = start_server(tmp_path_factory.mktemp("tight"), config)
    yield server
    stop_server(server)


def test_full_queue_is_503_with_retry_after(tight_server) -> None:
    body = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Write an essay."}],
            "max_tokens": 2000, "stream": True, "logit_bias": {"2": -100}}  # fmt: skip
    with httpx.stream("POST", f"{tight_server.base_url}/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as busy:  # fmt: skip
        lines = busy.iter_lines()  # kept: a dropped iterator closes the stream, freeing the engine
        next(lines)  # the engine is now generating for this stream
        client = openai.OpenAI(base_url=tight_server.base_url, api_key=API_KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError) as err:
            client.chat.completions.create(model="smollm2-135m-instruct", messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 503
        assert err.value.response.headers["retry-after"] == "1"
        validate("ErrorResponse", err.value.response.json())
        assert err.value.body["code"] == "engine_overloaded"
    # The stream above was closed mid-generation: the engine is free again as soon as the
    # server has seen the disconnect; a client that honours Retry-After gets through.
    retrying = openai.OpenAI(base_url=tight_server.base_url, api_key=API_KEY, max_retries=3)
    out = retrying.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert out.choices[0].message.content is not None
