"""Runs the Node suite (tests/node/sdk.test.mjs: the official `openai` npm package, pinned by the
committed lockfile) against the session's test server on the default models."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import API_KEY

HERE = Path(__file__).parent
pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="Node.js and npm are not installed")


def test_the_openai_npm_package_runs_against_homeport(server) -> None:
    if not (HERE / "node_modules" / "openai").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=600)
    env = {**os.environ, "HOMEPORT_BASE_URL": server.base_url, "HOMEPORT_API_KEY": API_KEY}
    run = subprocess.run(["npm", "test", "--silent"], cwd=HERE, env=env, capture_output=True, text=True, timeout=900)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    assert "ℹ fail 0" in report and "ℹ pass 11" in report, report  # the spec reporter's summary
