"""Platform administration through the official SDK's admin resources (`client.admin.organization`):
projects, project keys, per-model and per-day rate limits, admin keys, costs; isolation between
projects (another project's object is 404, not 403); archived projects and deleted keys stop working."""

from __future__ import annotations

import subprocess
import time

import httpx
import openai
import pytest

from tests.conftest import create_key, homeport_cli, start_server, stop_server
from tests.spec import validate

MODELS = [
    {"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake", "input_price": 1000.0,
     "output_price": 2000.0},
    {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake", "input_price": 100.0},
]  # fmt: skip
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    """A server on fake engines, an admin key, and an SDK client that holds it."""
    server = start_server(tmp_path_factory.mktemp("admin"), {"models": MODELS})
    admin_secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "root", "--admin")
    assert admin_secret.startswith("sk-hp-admin-")
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", admin_api_key=admin_secret, max_retries=0)
    yield server, client, admin_secret
    client.close()
    stop_server(server)


def _new_project(client: openai.OpenAI, name: str):  # -> Project
    project = client.admin.organization.projects.create(name=name)
    validate("Project", project.model_dump(mode="json", exclude_unset=True))
    return project


def _new_key(server, admin_secret: str, project_id: str, **fields) -> dict:
    """Homeport's own endpoint (OpenAI creates project keys only in its dashboard)."""
    r = httpx.post(f"{server.base_url}/homeport/projects/{project_id}/api_keys", json={"name": "k", **fields},
                   headers={"Authorization": f"Bearer {admin_secret}"})  # fmt: skip
    assert r.status_code == 200, r.text
    validate("ProjectApiKey", r.json())
    return r.json()


def _user(server, secret: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=retries)


def test_projects_are_created_listed_paged_renamed_and_archived(platform) -> None:
    server, client, admin_secret = platform
    made = [_new_project(client, f"proj-list-{i}") for i in range(3)]
    org = client.admin.organization
    page = org.projects.list(limit=2)
    validate("ProjectListResponse", page.model_dump(mode="json", exclude_unset=True))
    assert len(page.data) == 2 and page.has_more
    every = [p.id for p in org.projects.list(limit=2)]  # the SDK follows `after` through the pages
    assert {p.id for p in made} <= set(every) and len(every) == len(set(every))
    renamed = org.projects.update(made[0].id, name="proj-list-renamed")
    assert renamed.name == "proj-list-renamed" and org.projects.retrieve(made[0].id).name == "proj-list-renamed"
    with pytest.raises(openai.ConflictError):
        org.projects.create(name="proj-list-1")  # names are handles for the CLI: unique
    with pytest.raises(openai.NotFoundError):
        org.projects.retrieve("proj_nope")

    key = _new_key(server, admin_secret, made[1].id)
    assert _user(server, key["value"]).chat.completions.create(model="fake-chat", messages=HI, max_tokens=2)
    archived = org.projects.archive(made[1].id)
    assert archived.status == "archived" and archived.archived_at
    assert made[1].id not in [p.id for p in org.projects.list()]
    assert made[1].id in [p.id for p in org.projects.list(include_archived=True)]
    time.sleep(1.1)  # keys are cached for key_cache_s = 1 s
    with pytest.raises(openai.AuthenticationError, match="archived"):
        _user(server, key["value"]).chat.completions.create(model="fake-chat", messages=HI, max_tokens=2)


def test_project_keys_listed_retrieved_deleted_and_isolated(platform) -> None:
    server, client, admin_secret = platform
    org = client.admin.organization
    a, b = _new_project(client, "iso-a"), _new_project(client, "iso-b")
    key_a = _new_key(server, admin_secret, a.id, max_requests_per_1_minute=100, budget_usd=5, models=["fake-chat"])
    assert key_a["value"].startswith("sk-hp-") and key_a["value"] not in key_a["redacted_value"]
    assert (key_a["budget_usd"], key_a["models"]) == (5.0, ["fake-chat"])
    _user(server, key_a["value"]).chat.completions.create(model="fake-chat", messages=HI, max_tokens=2)

    listed = org.projects.api_keys.list(a.id)
    validate("ProjectApiKeyListResponse", listed.model_dump(mode="json", exclude_unset=True))
    assert [k.id for k in listed.data] == [key_a["id"]]
    assert org.projects.api_keys.list(b.id).data == []
    time.sleep(1.2)  # last use is written with the batched usage records
    assert org.projects.api_keys.retrieve(key_a["id"], project_id=a.id).last_used_at is not None
    # Project b's path does not reach project a's key: not found, not forbidden.
    with pytest.raises(openai.NotFoundError):
        org.projects.api_keys.retrieve(key_a["id"], project_id=b.id)
    with pytest.raises(openai.NotFoundError):
        org.projects.api_keys.delete(key_a["id"], project_id=b.id)

    # A project key can't administer; an admin key can't call models.
    key_b = _new_key(server, admin_secret, b.id)
    as_user = openai.OpenAI(base_url=server.base_url, api_key="x", admin_api_key=key_b["value"], max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        as_user.admin.organization.projects.list()
    with pytest.raises(openai.PermissionDeniedError):
        _user(server, admin_secret).chat.completions.create(model="fake-chat", messages=HI)
    # Usage: project b's key sees none of project a's requests; the admin sees them.
    start = int(time.time()) - 60
    seen_by_b = as_user.admin.organization.usage.completions(start_time=start, bucket_width="1m")
    assert all(not bkt.results for bkt in seen_by_b.data)
    usage = org.usage.completions(start_time=start, bucket_width="1m", project_ids=[a.id], group_by=["project_id"])
    validate("UsageResponse", usage.model_dump(mode="json", exclude_unset=True))
    assert sum(r.num_model_requests for bkt in usage.data for r in bkt.results) == 1

    deleted = org.projects.api_keys.delete(key_a["id"], project_id=a.id)
    validate("ProjectApiKeyDeleteResponse", deleted.model_dump(mode="json", exclude_unset=True))
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError):
        _user(server, key_a["value"]).chat.completions.create(model="fake-chat", messages=HI)
    with pytest.raises(openai.NotFoundError):
        org.projects.api_keys.retrieve(key_a["id"], project_id=a.id)


def test_per_model_and_per_day_limits(platform) -> None:
    server, client, admin_secret = platform
    org = client.admin.organization
    project = _new_project(client, "limits")
    limits = org.projects.rate_limits.list_rate_limits(project.id)
    validate("ProjectRateLimitListResponse", limits.model_dump(mode="json", exclude_unset=True))
    assert [x.model for x in limits.data] == ["*", "fake-chat", "fake-embed"]
    assert all(x.max_requests_per_1_minute == 0 for x in limits.data)  # 0: no limit
    chat_limit = org.projects.rate_limits.update_rate_limit("rl-fake-chat", project_id=project.id,
                                                            max_requests_per_1_minute=2)  # fmt: skip
    validate("ProjectRateLimit", chat_limit.model_dump(mode="json", exclude_unset=True))
    org.projects.rate_limits.update_rate_limit("rl-fake-embed", project_id=project.id, max_requests_per_1_day=1)
    user = _user(server, _new_key(server, admin_secret, project.id)["value"])

    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.2)  # minute limits count per clock minute
    for remaining in ("1", "0"):
        raw = user.chat.completions.with_raw_response.create(model="fake-chat", messages=HI, max_tokens=2)
        assert (raw.headers["x-ratelimit-limit-requests"], raw.headers["x-ratelimit-remaining-requests"]) == (
            "2", remaining)  # fmt: skip
    with pytest.raises(openai.RateLimitError, match="for model fake-chat"):
        user.chat.completions.create(model="fake-chat", messages=HI, max_tokens=2)
    # The day limit of the other model: the second request of the day is refused with the true wait
    # in Retry-After (hours), so the SDK gives up after its short backoff instead of sleeping on it.
    user.embeddings.create(model="fake-embed", input="a")
    patient = _user(server, user.api_key, retries=2)
    began = time.monotonic()
    with pytest.raises(openai.RateLimitError, match="per day") as err:
        patient.embeddings.create(model="fake-embed", input="b")
    assert int(err.value.response.headers["retry-after"]) > 60 or 86400 - time.time() % 86400 < 61
    assert time.monotonic() - began < 30
    # Limits set to 0 are removed.
    org.projects.rate_limits.update_rate_limit("rl-fake-chat", project_id=project.id, max_requests_per_1_minute=0)
    with pytest.raises(openai.NotFoundError):
        org.projects.rate_limits.update_rate_limit("rl-gpt-9", project_id=project.id, max_requests_per_1_minute=1)
    with pytest.raises(openai.BadRequestError) as bad:
        org.projects.rate_limits.update_rate_limit("rl-fake-chat", project_id=project.id, max_images_per_1_minute=1)
    assert bad.value.body["param"] == "max_images_per_1_minute"


@pytest.mark.parametrize(
    ("field", "value"),
    [("expires_in_seconds", 2**64), ("budget_tokens", 2**63), ("budget_usd", 1e300),
     ("max_requests_per_1_minute", 2**31), ("max_tokens_per_1_day", 2**63)],
)  # fmt: skip
def test_numbers_past_what_is_stored_are_400_and_change_nothing(platform, field: str, value: float) -> None:
    server, client, admin_secret = platform
    org = client.admin.organization
    project = _new_project(client, f"too-big-{field}")
    r = httpx.post(f"{server.base_url}/homeport/projects/{project.id}/api_keys", json={"name": "k", field: value},
                   headers={"Authorization": f"Bearer {admin_secret}"})  # fmt: skip
    assert r.status_code == 400, r.text
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["param"] == field
    assert org.projects.api_keys.list(project.id).data == []
    if field == "max_requests_per_1_minute":  # the same on the rate-limit objects; the limits stay as they were
        limits = org.projects.rate_limits
        for name, bad_value in ((field, value), ("batch_1_day_max_input_tokens", 2**63),
                                ("batch_1_day_max_input_tokens", -1)):  # fmt: skip
            with pytest.raises(openai.BadRequestError) as bad:
                limits.update_rate_limit("rl-*", project_id=project.id, **{name: bad_value})
            assert bad.value.body["param"] == name
        assert all(x.max_requests_per_1_minute == x.batch_1_day_max_input_tokens == 0
                   for x in limits.list_rate_limits(project.id).data)  # fmt: skip
        largest = limits.update_rate_limit("rl-*", project_id=project.id, max_requests_per_1_minute=2**31 - 1,
                                           batch_1_day_max_input_tokens=2**63 - 1)  # fmt: skip
        assert (largest.max_requests_per_1_minute, largest.batch_1_day_max_input_tokens) == (2**31 - 1, 2**63 - 1)
    # A filter past every time a database holds finds nothing, rather than failing.
    assert org.audit_logs.list(effective_at={"gt": 2**64}).data == []


def test_the_cli_refuses_numbers_past_what_is_stored(platform) -> None:
    server, client, _ = platform
    env = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    for args in (["limits", "set", "--project", "cli-big", "--rpm", str(2**31)],
                 ["keys", "create", "--name", "cli-big", "--budget-tokens", str(2**63)],
                 ["keys", "create", "--name", "cli-big", "--expires-in-days", "1e400"],
                 ["projects", "set", "cli-big", "--retention-days", "36501"]):  # fmt: skip
        with pytest.raises(subprocess.CalledProcessError) as refused:
            homeport_cli(env, *args)
        assert f"Invalid value for '{args[-2]}'" in refused.value.stdout + refused.value.stderr
    org = client.admin.organization
    assert "cli-big" not in {p.name for p in org.projects.list(limit=100).data}
    homeport_cli(env, "limits", "set", "--project", "cli-big", "--rpm", str(2**31 - 1))  # the largest it holds
    made = next(p for p in org.projects.list(limit=100).data if p.name == "cli-big")
    assert org.projects.rate_limits.list_rate_limits(made.id).data[0].max_requests_per_1_minute == 2**31 - 1


def test_admin_keys(platform) -> None:
    server, client, _ = platform
    keys = client.admin.organization.admin_api_keys
    made = keys.create(name="second admin")
    validate("AdminApiKeyCreateResponse", made.model_dump(mode="json", exclude_unset=True))
    listed = keys.list()
    validate("ApiKeyList", listed.model_dump(mode="json", exclude_unset=True))
    assert made.id in [k.id for k in listed.data]
    second = openai.OpenAI(base_url=server.base_url, api_key="x", admin_api_key=made.value, max_retries=0)
    assert second.admin.organization.admin_api_keys.retrieve(made.id).name == "second admin"
    assert keys.delete(made.id).deleted
    time.sleep(1.1)
    with pytest.raises(openai.AuthenticationError):
        second.admin.organization.projects.list()


def test_costs_by_line_item_at_the_configured_prices(platform) -> None:
    server, client, admin_secret = platform
    project = _new_project(client, "costs")
    user = _user(server, _new_key(server, admin_secret, project.id)["value"])
    out = user.chat.completions.create(model="fake-chat", messages=HI, max_tokens=5)
    emb = user.embeddings.create(model="fake-embed", input="some words here")
    time.sleep(1.2)
    costs = client.admin.organization.usage.costs(start_time=int(time.time()) // 86400 * 86400,
                                                  project_ids=[project.id], group_by=["line_item"])  # fmt: skip
    validate("UsageResponse", costs.model_dump(mode="json", exclude_unset=True))
    items = {r.line_item: r.amount.value for bkt in costs.data for r in bkt.results}
    assert items == pytest.approx({
        "fake-chat, input": out.usage.prompt_tokens * 1000 / 1e6,
        "fake-chat, output": out.usage.completion_tokens * 2000 / 1e6,
        "fake-embed, input": emb.usage.prompt_tokens * 100 / 1e6,
        "fake-embed, output": 0.0,
    })  # fmt: skip
