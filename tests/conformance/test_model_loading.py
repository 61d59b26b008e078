"""Models loaded and unloaded without a restart: the admin API and `homeport models`, the memory
budget (a load that would pass it is refused, naming both numbers), an idle model unloaded after
its keep-alive and loaded again by the next request (which the SDK retries through). Fake engines:
each counts 1 MB."""

from __future__ import annotations

import subprocess
import time

import httpx
import openai
import pytest

from tests.conftest import API_KEY, create_key, homeport_cli, start_server, stop_server

MODELS = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
          {"id": "fake-chat-2", "version": "v1", "kind": "chat", "backend": "fake"},
          {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake"}]  # fmt: skip
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # -> (server, admin client, cli env)
    config = {"models": MODELS, "load_models": ["fake-chat", "fake-embed"], "models_memory_mb": 2,
              "cache_enabled": False, "vector_store_model": "fake-embed"}  # fmt: skip
    server = start_server(tmp_path_factory.mktemp("loading"), config)
    admin_key = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "ops", "--admin")
    admin = httpx.Client(base_url=server.base_url, headers={"authorization": f"Bearer {admin_key}"}, timeout=60)
    env = {"HOMEPORT_ADMIN_KEY": admin_key, "OPENAI_BASE_URL": server.base_url}
    yield server, admin, env
    admin.close()
    stop_server(server)


def _loaded(admin: httpx.Client) -> set[str]:
    return {m["id"] for m in admin.get("/homeport/models").json()["data"] if m["loaded"]}


def test_load_unload_and_the_memory_budget(served) -> None:
    server, admin, env = served
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    assert _loaded(admin) == {"fake-chat", "fake-embed"}
    with pytest.raises(openai.NotFoundError) as missing:  # configured, never loaded
        client.chat.completions.create(model="fake-chat-2", messages=HI, max_tokens=2)
    assert missing.value.code == "model_not_found" and "homeport models load fake-chat-2" in missing.value.message
    refused = admin.post("/homeport/models/fake-chat-2/load")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "insufficient_memory"
    assert "needs 1 MB" in refused.json()["error"]["message"] and "budget is 2 MB, 2 MB of it in use" in \
        refused.json()["error"]["message"]  # fmt: skip
    # The CLI drives the same API: unload one, then the other fits.
    assert "unloaded" in homeport_cli(env, "models", "unload", "fake-embed")
    assert "loaded" in homeport_cli(env, "models", "load", "fake-chat-2")
    assert _loaded(admin) == {"fake-chat", "fake-chat-2"}
    assert client.chat.completions.create(model="fake-chat-2", messages=HI, max_tokens=2).model == "fake-chat-2"
    assert "fake-chat-2" in homeport_cli(env, "models", "status")
    with pytest.raises(subprocess.CalledProcessError) as err:  # the budget's refusal reaches the CLI
        homeport_cli(env, "models", "load", "fake-embed")
    assert "memory budget" in err.value.stdout + err.value.stderr
    # Only an admin key manages models.
    user = httpx.post(f"{server.base_url}/homeport/models/fake-embed/load",
                      headers={"authorization": f"Bearer {API_KEY}"})  # fmt: skip
    assert user.status_code == 403


def test_an_idle_model_unloads_and_the_next_request_loads_it(tmp_path) -> None:
    server = start_server(tmp_path, {"models": MODELS[:1], "model_keep_alive_s": 2, "cache_enabled": False})
    admin_key = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "ops", "--admin")
    admin = httpx.Client(base_url=server.base_url, headers={"authorization": f"Bearer {admin_key}"}, timeout=60)
    try:
        _idle_model_comes_back(server, admin)
    finally:
        admin.close()
        stop_server(server)


def _idle_model_comes_back(server, admin: httpx.Client) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    client.chat.completions.create(model="fake-chat", messages=HI, max_tokens=2)
    deadline = time.monotonic() + 60
    while "fake-chat" in _loaded(admin):  # keep-alive 2 s: unloaded once idle that long
        assert time.monotonic() < deadline, "the idle model was never unloaded"
        time.sleep(0.2)
    with pytest.raises(openai.InternalServerError) as err:  # 503 while it loads again, with Retry-After
        client.chat.completions.create(model="fake-chat", messages=HI, max_tokens=2)
    assert err.value.status_code == 503 and err.value.response.headers.get("retry-after")
    retrying = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=5)  # the SDK's own retries
    assert retrying.chat.completions.create(model="fake-chat", messages=HI, max_tokens=2).model == "fake-chat"
    assert "fake-chat" in _loaded(admin)


def test_a_model_past_the_budget_at_start_waits_for_its_first_request(tmp_path) -> None:
    """Start-up loads what fits and is ready; the model past the budget is refused, naming both
    numbers, when asked for, and loads once another model has made room."""
    server = start_server(tmp_path, {"models": MODELS, "models_memory_mb": 2, "cache_enabled": False,
                                     "vector_store_model": "fake-embed"})  # fmt: skip
    admin_key = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "ops", "--admin")
    admin = httpx.Client(base_url=server.base_url, headers={"authorization": f"Bearer {admin_key}"}, timeout=60)
    try:
        assert httpx.get(server.base_url.removesuffix("/v1") + "/readyz").status_code == 200
        assert _loaded(admin) == {"fake-chat", "fake-chat-2"}
        client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
        deadline = time.monotonic() + 60
        while True:  # 503 while its load is tried, then the budget's refusal
            with pytest.raises(openai.APIStatusError) as err:
                client.embeddings.create(model="fake-embed", input="hi")
            if err.value.status_code != 503:
                break
            assert time.monotonic() < deadline, "the deferred model's load never finished"
            time.sleep(0.2)
        assert err.value.status_code == 409 and err.value.code == "insufficient_memory"
        assert "budget is 2 MB, 2 MB of it in use" in err.value.message
        assert admin.post("/homeport/models/fake-chat-2/unload").status_code == 200
        retrying = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=5)
        assert retrying.embeddings.create(model="fake-embed", input="hi").model == "fake-embed"
        assert _loaded(admin) == {"fake-chat", "fake-embed"}
    finally:
        admin.close()
        stop_server(server)
