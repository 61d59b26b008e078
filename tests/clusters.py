"""Throwaway PostgreSQL clusters for tests and benches that need one of their own: a data
directory in /tmp, a free port, stopped and removed afterwards (the machine's shared server is
never touched).

`pgvector_bin_dir` finds server binaries that have the pgvector extension: the machine's own
PostgreSQL if its Debian package `postgresql-NN-pgvector` is installed, else the PostgreSQL 16 +
pgvector 0.6.2 build inside the `pgserver` wheel (a test dependency; Apache-2.0, the bundled
PostgreSQL and pgvector under the PostgreSQL licence)."""

from __future__ import annotations

import glob
import importlib.util
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from homeport.storage.db import Database
from tests.conftest import _free_port

__all__ = ["fresh_database", "pgvector_bin_dir", "throwaway_cluster"]


def _as_postgres(*command: str) -> list[str]:
    """The server refuses to run as root: as root, run it as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


def pgvector_bin_dir() -> Path | None:
    for control in sorted(glob.glob("/usr/share/postgresql/*/extension/vector.control"), reverse=True):
        version = Path(control).parents[1].name
        if Path(f"/usr/lib/postgresql/{version}/bin/pg_ctl").exists():
            return Path(f"/usr/lib/postgresql/{version}/bin")
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    return bin_dir if (bin_dir / "pg_ctl").exists() else None


@contextmanager
def throwaway_cluster(bin_dir: Path) -> Iterator[str]:
    """A running cluster from `bin_dir`'s binaries; yields its SQLAlchemy URL (database `postgres`)."""
    home = Path(tempfile.mkdtemp(prefix="homeport-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, port = home / "data", _free_port()
    subprocess.run(_as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"),
                   check=True, capture_output=True, timeout=180)  # fmt: skip
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "120"]
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run(_as_postgres(*pg_ctl, "-o", options, "-l", str(home / "log"), "start"),
                   check=True, capture_output=True, timeout=180)  # fmt: skip
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(*pg_ctl, "-m", "fast", "stop"), capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


@asynccontextmanager
async def fresh_database(admin: Any, root: str, prefix: str) -> AsyncIterator[Database]:
    """A new, migrated database beside `admin`'s (an asyncpg connection to the same server, whose
    SQLAlchemy URL without the database name is `root`), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    await admin.execute(f"CREATE DATABASE {name}")
    database = Database(f"{root}/{name}")
    try:
        await database.migrate()
        yield database
    finally:
        await database.close()
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
