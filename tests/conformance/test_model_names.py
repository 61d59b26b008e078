"""OpenAI's model names through the official SDK: code written for api.openai.com runs unchanged,
answers name the model that answered, a project may map names its own way, and the table can be
turned off. Fake engines (they answer at once)."""

from __future__ import annotations

import subprocess

import openai
import pytest

from tests.conftest import API_KEY, create_key, homeport_cli, start_server, stop_server

MODELS = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
          {"id": "fake-chat-2", "version": "v2", "kind": "chat", "backend": "fake"},
          {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake"}]  # fmt: skip
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # -> (server, env)
    server = start_server(tmp_path_factory.mktemp("names"), {"models": MODELS, "cache_enabled": False,
                                                              "vector_store_model": "fake-embed"})  # fmt: skip
    yield server, {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    stop_server(server)


def test_openai_code_runs_unchanged_and_answers_name_the_model(served) -> None:
    server, _ = served
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    for name in ("gpt-4o-mini", "gpt-4.1", "gpt-5-nano", "o3-mini", "gpt-3.5-turbo"):
        out = client.chat.completions.create(model=name, messages=HI, max_tokens=4)
        assert out.model == "fake-chat", name  # the first chat model answers, and says so
    stream = client.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=4, stream=True)
    assert {chunk.model for chunk in stream} == {"fake-chat"}
    embedded = client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert embedded.model == "fake-embed" and embedded.data[0].embedding
    response = client.responses.create(model="gpt-4.1-mini", input="Hi", max_output_tokens=16)
    assert response.model == "fake-chat"
    listed = {m.id for m in client.models.list()}
    assert {"gpt-4o-mini", "text-embedding-3-large", "fake-chat"} <= listed
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError) as err:  # a name nobody serves is still 404
        client.chat.completions.create(model="gpt-9-ultra", messages=HI)
    assert err.value.code == "model_not_found"
    # Names the configuration gives win over the table: fake-chat-2's own id stays its own.
    assert client.chat.completions.create(model="fake-chat-2", messages=HI, max_tokens=4).model == "fake-chat-2"


def test_a_project_maps_names_its_own_way(served) -> None:
    server, env = served
    config = ["--config", str(server.data_dir.parent / "config.yaml")]  # names are checked against its models
    homeport_cli(env, "projects", "set", "mapped", "--alias", "gpt-4o=fake-chat-2",
                 "--alias", "house-model=fake-chat-2", *config)
    mapped = openai.OpenAI(base_url=server.base_url, api_key=create_key(env, "--name", "m", "--project", "mapped"),
                           max_retries=0)  # fmt: skip
    other = openai.OpenAI(base_url=server.base_url, api_key=create_key(env, "--name", "o", "--project", "other"),
                          max_retries=0)  # fmt: skip
    assert mapped.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=4).model == "fake-chat-2"
    assert mapped.chat.completions.create(model="house-model", messages=HI, max_tokens=4).model == "fake-chat-2"
    assert mapped.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=4).model == "fake-chat"
    assert other.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=4).model == "fake-chat"
    with pytest.raises(openai.NotFoundError):  # another project's name means nothing here
        other.chat.completions.create(model="house-model", messages=HI, max_tokens=4)
    assert "house-model" in {m.id for m in mapped.models.list()}
    assert "house-model" not in {m.id for m in other.models.list()}
    assert mapped.models.retrieve("house-model").id == "house-model"
    # A key of that project limited to fake-chat-2 may use the project's names for it, and nothing else.
    narrow = openai.OpenAI(base_url=server.base_url, max_retries=0, api_key=create_key(
        env, "--name", "n", "--project", "mapped", "--models", "fake-chat-2"))  # fmt: skip
    assert narrow.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=4).model == "fake-chat-2"
    with pytest.raises(openai.NotFoundError):
        narrow.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=4)
    # Removing a name; an unknown target is refused before anything is stored.
    homeport_cli(env, "projects", "set", "mapped", "--alias", "house-model=", *config)
    with pytest.raises(openai.NotFoundError):
        mapped.chat.completions.create(model="house-model", messages=HI, max_tokens=4)
    with pytest.raises(subprocess.CalledProcessError) as refused:
        homeport_cli(env, "projects", "set", "mapped", "--alias", "gpt-4o=no-such-model", *config)
    assert "not a served model" in refused.value.stderr
    assert mapped.chat.completions.create(model="gpt-4o", messages=HI, max_tokens=4).model == "fake-chat-2"


def test_models_list_shows_the_names_and_the_table_can_be_turned_off(served, tmp_path) -> None:
    server, env = served
    config = tmp_path / "config.yaml"
    config.write_text(f"models: {MODELS}\n")
    listed = homeport_cli(env | {"COLUMNS": "300"}, "models", "list", "--config", str(config))
    assert "gpt-4o-mini" in listed and "text-embedding-3-small" in listed and "fake-chat-2" in listed
    off = start_server(tmp_path / "off", {"models": MODELS, "openai_aliases": False, "cache_enabled": False,
                                          "vector_store_model": "fake-embed"})  # fmt: skip
    try:
        client = openai.OpenAI(base_url=off.base_url, api_key=API_KEY, max_retries=0)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-4o-mini", messages=HI, max_tokens=4)
        assert "gpt-4o-mini" not in {m.id for m in client.models.list()}
        assert client.chat.completions.create(model="fake-chat", messages=HI, max_tokens=4).model == "fake-chat"
    finally:
        stop_server(off)
    config.write_text(f"models: {MODELS}\nopenai_aliases: false\n")
    assert "off" in homeport_cli(env | {"COLUMNS": "300"}, "models", "list", "--config", str(config))
