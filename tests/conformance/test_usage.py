"""Usage accounting through the API: every request recorded, reported in OpenAI's shapes."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import API_KEY, create_key, homeport_cli
from tests.spec import validate


def _key(server, project: str) -> str:
    return create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", project, "--project", project)


def _report(server, secret: str, kind: str, **params) -> dict:
    r = httpx.get(f"{server.base_url}/organization/usage/{kind}", headers={"Authorization": f"Bearer {secret}"},
                  params={"start_time": int(time.time()) - 3600, "bucket_width": "1h", **params})  # fmt: skip
    assert r.status_code == 200, r.text
    validate("UsageResponse", r.json())
    return r.json()


def test_usage_adds_up_per_project(server) -> None:
    secret = _key(server, "usage-a")
    client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
    expected_in = expected_out = 0
    for text in ("one", "two", "three"):
        out = client.chat.completions.create(
            model="smollm2-135m-instruct", messages=[{"role": "user", "content": text}], max_tokens=3
        )
        expected_in, expected_out = expected_in + out.usage.prompt_tokens, expected_out + out.usage.completion_tokens
    stream = client.chat.completions.create(model="smollm2-135m-instruct", max_tokens=3, stream=True,
                                            stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "four"}])  # fmt: skip
    final = [c for c in stream][-1].usage
    expected_in, expected_out = expected_in + final.prompt_tokens, expected_out + final.completion_tokens
    emb = client.embeddings.create(model="all-minilm-l6-v2", input=["a b c", "d e"])
    time.sleep(1.2)  # records are written in batches every 0.5 s

    report = _report(server, secret, "completions", group_by=["model"])
    results = [r for bucket in report["data"] for r in bucket["results"]]
    assert len(results) == 1 and results[0]["model"] == "smollm2-135m-instruct"
    assert results[0]["num_model_requests"] == 4
    assert (results[0]["input_tokens"], results[0]["output_tokens"]) == (expected_in, expected_out)
    emb_results = [r for b in _report(server, secret, "embeddings")["data"] for r in b["results"]]
    assert emb_results[0]["input_tokens"] == emb.usage.prompt_tokens

    # An hour-aligned range is answered from the hourly rollups: the same totals.
    hour = int(time.time()) // 3600 * 3600
    rolled = _report(server, secret, "completions", group_by=["model"], start_time=hour - 3600, end_time=hour + 3600)
    rolled_results = [r for bucket in rolled["data"] for r in bucket["results"]]
    assert [(r["num_model_requests"], r["input_tokens"], r["output_tokens"]) for r in rolled_results] == [
        (4, expected_in, expected_out)]  # fmt: skip

    # The CLI report reads the same rollups.
    out = homeport_cli({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "usage", "--days", "1", "--group-by", "model")
    assert "smollm2-135m-instruct" in out and "all-minilm-l6-v2" in out and "cost: $" in out

    # Another project's key sees only its own project's usage.
    other = _key(server, "usage-b")
    assert all(not b["results"] for b in _report(server, other, "completions")["data"])


@pytest.mark.parametrize(
    ("params", "param"),
    [({}, None), ({"start_time": "yesterday"}, None), ({"start_time": 0, "bucket_width": "2d"}, "bucket_width"),
     ({"start_time": 0, "group_by": ["colour"]}, "group_by"), ({"start_time": 2**63}, "start_time"),
     ({"start_time": -1}, "start_time"), ({"start_time": 0, "end_time": 10**19}, "end_time")],
)  # fmt: skip
@pytest.mark.parametrize("path", ["usage/completions", "costs"])
def test_bad_usage_queries_are_400(server, params: dict, param: str | None, path: str) -> None:
    r = httpx.get(f"{server.base_url}/organization/{path}", params=params,
                  headers={"Authorization": f"Bearer {API_KEY}"})  # fmt: skip
    assert r.status_code == 400, r.text
    validate("ErrorResponse", r.json())
    if param:
        assert r.json()["error"]["param"] == param
