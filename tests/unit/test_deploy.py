"""The deployment files (deploy/): no container engine runs here, so what can be checked is checked:
every file parses, names only real settings, routes and metrics, agrees with ./run on how
llama.cpp is built; and the entrypoint both the image and the manifests use really serves."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from homeport.api.app import create_app
from homeport.metrics import Metrics
from homeport.settings import EngineSettings, Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))


def _documents() -> list[dict]:
    docs = [yaml.safe_load((DEPLOY / name).read_text()) for name in ("compose.yaml", "homeport.yaml")]
    for path in MANIFESTS:
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _env_names() -> set[str]:
    """Every HOMEPORT_* variable the files set."""
    text = "\n".join(p.read_text() for p in [DEPLOY / "compose.yaml", DEPLOY / "Dockerfile", *MANIFESTS])
    return set(re.findall(r"\bHOMEPORT_[A-Z_]+\b", text))


def test_every_file_parses_and_every_manifest_has_a_kind() -> None:
    docs = _documents()
    kinds = {d["kind"] for d in docs if "kind" in d}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Job", "ConfigMap", "Secret"} <= kinds
    compose = docs[0]
    assert {"homeport-1", "homeport-2", "postgres", "redis", "proxy", "vllm"} <= set(compose["services"])
    assert compose["services"]["vllm"]["profiles"] == ["gpu"]


def test_the_files_name_only_real_settings() -> None:
    fields = set(Settings.model_fields) | {"config"}  # HOMEPORT_CONFIG names the settings file
    nested = {f"engine__{name}" for name in EngineSettings.model_fields}
    for env in _env_names():
        name = env.removeprefix("HOMEPORT_").lower()
        assert name in fields or name in nested, f"{env} is not a setting"
    configs = [yaml.safe_load((DEPLOY / "homeport.yaml").read_text())]
    configs += [yaml.safe_load(d["data"]["config.yaml"]) for d in _documents() if d.get("kind") == "ConfigMap"]
    for config in configs:
        Settings(**config)  # validates every key, model and engine setting


def test_probes_and_the_scaling_metric_exist(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, models=[]))
    paths = set(app.openapi()["paths"])
    (deployment,) = [d for d in _documents() if d.get("kind") == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in paths
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] in paths
    metrics = Metrics()
    metrics.watch_engines(lambda: {"m": {"queue_depth": 3.0, "slots_busy": 1.0}})
    (hpa,) = [d for d in _documents() if d.get("kind") == "HorizontalPodAutoscaler"]
    for metric in hpa["spec"]["metrics"]:
        if metric["type"] == "Pods":
            assert metric["pods"]["metric"]["name"] in metrics.render().decode()


def test_the_image_builds_llama_cpp_as_the_run_script_does() -> None:
    run, dockerfile = (REPO / "run").read_text(), (DEPLOY / "Dockerfile").read_text()
    flags = re.search(r'LLAMA_CMAKE_ARGS="([^"]+)"', run).group(1)  # type: ignore[union-attr]
    version = re.search(r"LLAMA_VERSION=(\S+)", run).group(1)  # type: ignore[union-attr]
    assert f'CMAKE_ARGS="{flags}"' in dockerfile and f"llama-cpp-python=={version}" in dockerfile
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.M):
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which is not in the repository"
    nginx = (DEPLOY / "nginx.conf").read_text()
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    for host in re.findall(r"server (\S+):8080;", nginx):
        assert host in services


def test_the_entrypoint_migrates_and_serves(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "config.yaml"
    config.write_text("models:\n  - {id: fake-chat, version: v1, kind: chat, backend: fake}\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOMEPORT_HOST": "127.0.0.1",
           "HOMEPORT_PORT": str(port), "HOMEPORT_CONFIG": str(config), "HOMEPORT_DATA_DIR": str(tmp_path / "data"),
           "HOMEPORT_API_KEY": "sk-hp-entrypoint-test-key"}  # fmt: skip
    log = tmp_path / "log"
    process = subprocess.Popen(["sh", str(DEPLOY / "entrypoint.sh")], env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                            headers={"authorization": "Bearer sk-hp-entrypoint-test-key"},
                            json={"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert answer.status_code == 200
        assert (tmp_path / "data" / "homeport.db").exists()  # `homeport migrate` made the database
    finally:
        process.terminate()
        process.wait(timeout=30)
