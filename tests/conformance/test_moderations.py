"""POST /v1/moderations through the official SDK, on the default moderation model (a toxicity BiLSTM
and the MiniLM embedding model; services/moderations)."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import API_KEY
from tests.spec import validate, wire

CATEGORIES = {"harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
              "self-harm", "self-harm/intent", "self-harm/instructions", "sexual", "sexual/minors", "violence",
              "violence/graphic"}  # fmt: skip


def test_default_model_string_input_shape_and_flags(client) -> None:
    out = client.moderations.create(input="You stupid idiot, I'm going to stab you.")
    validate("CreateModerationResponse", wire(out))
    assert out.id.startswith("modr-") and out.model == "homeport-moderation"  # the model that answered
    (result,) = out.results
    raw = result.model_dump(by_alias=True)
    assert set(raw["categories"]) == set(raw["category_scores"]) == CATEGORIES
    assert result.flagged and result.categories.harassment and result.categories.violence
    assert raw["category_applied_input_types"]["violence"] == ["text"]
    assert not result.categories.sexual and not result.categories.self_harm


def test_list_input_keeps_order_and_benign_text_passes(client) -> None:
    texts = ["Thanks for fixing the citation on the history page.", "I want to end my life tonight.",
             "Describe in explicit detail the sex you want to have with me."]  # fmt: skip
    out = client.moderations.create(model="text-moderation-latest", input=texts)
    assert [r.flagged for r in out.results] == [False, True, True]
    assert out.results[1].categories.self_harm and out.results[2].categories.sexual
    assert max(out.results[0].category_scores.model_dump().values()) < 0.5


def test_multimodal_text_parts_and_image_refused(client) -> None:
    out = client.moderations.create(model="omni-moderation-2024-09-26",
                                    input=[{"type": "text", "text": "Have a lovely day."}])  # fmt: skip
    assert out.results[0].flagged is False
    with pytest.raises(openai.BadRequestError) as err:
        client.moderations.create(input=[{"type": "text", "text": "hi"},
                                         {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}])
    assert err.value.body["param"] == "input.[1].image_url"


def test_long_input_is_scored_in_windows(client) -> None:
    filler = "The committee reviewed the quarterly budget and approved the new library hours. " * 30
    out = client.moderations.create(input=filler + "I will stab you, you worthless moron. " + filler)
    assert out.results[0].flagged and out.results[0].categories.harassment


def test_errors_and_usage(client, server) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.moderations.create(model="no-such-model", input="hi")
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as err:
        client.moderations.create(model="smollm2-135m-instruct", input="hi")
    assert err.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError):
        client.moderations.create(input=[])
    out = client.moderations.with_raw_response.create(input="a b c")
    assert "usage" not in out.http_response.json()  # OpenAI's moderation object has none

    def report() -> dict:
        return httpx.get(f"{server.base_url}/organization/usage/moderations",
                         params={"start_time": int(time.time()) - 3600, "bucket_width": "1h"},
                         headers={"Authorization": f"Bearer {API_KEY}"}).json()  # fmt: skip

    def requests(r: dict) -> int:
        return sum(x["num_model_requests"] for b in r["data"] for x in b["results"])

    deadline = time.monotonic() + 60  # usage is written in the background
    while requests(got := report()) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    validate("UsageResponse", got)
    assert requests(got) >= 5
    assert sum(x["input_tokens"] for b in got["data"] for x in b["results"]) > 0
