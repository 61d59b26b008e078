"""`homeport batches …`: the Batch API from the command line, as a client of a running server
(over HTTP, with an API key, like any SDK), so a batch is admitted, scoped and metered as usual."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["batches_app"]

batches_app = typer.Typer(help="The Batch API: create, list, follow, cancel, download.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)
TERMINAL = ("completed", "failed", "expired", "cancelled")

BaseUrl = Annotated[str, typer.Option(envvar="OPENAI_BASE_URL", help="The server's API root.")]
ApiKey = Annotated[str | None, typer.Option(envvar=["OPENAI_API_KEY", "HOMEPORT_API_KEY"], help="An API key.")]


def _client(base_url: str, api_key: str | None) -> httpx.Client:
    key = api_key or os.environ.get("HOMEPORT_API_KEY")
    if not key:
        console.print("Give an API key: --api-key, or OPENAI_API_KEY / HOMEPORT_API_KEY.")
        raise typer.Exit(2)
    return httpx.Client(base_url=base_url.rstrip("/") + "/", headers={"Authorization": f"Bearer {key}"}, timeout=120)


def _ok(answer: httpx.Response) -> Any:
    if answer.status_code >= 400:
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.text[:300]
        console.print(f"[red]{answer.status_code}[/red] {message}")
        raise typer.Exit(1)
    return answer.json()


@batches_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="A JSONL file: one request per line (custom_id, method, url, body).")],
    endpoint: Annotated[str, typer.Option(help="/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses")],
    metadata: Annotated[list[str] | None, typer.Option(help="key=value, repeatable.")] = None,
    base_url: BaseUrl = "http://127.0.0.1:8080/v1",
    api_key: ApiKey = None,
) -> None:
    """Upload FILE and start a batch on it; prints the batch id."""
    with _client(base_url, api_key) as http, file.open("rb") as f:
        uploaded = _ok(http.post("files", data={"purpose": "batch"}, files={"file": (file.name, f)}))
        body = {"input_file_id": uploaded["id"], "endpoint": endpoint, "completion_window": "24h",
                "metadata": dict(m.split("=", 1) for m in metadata or [])}  # fmt: skip
        batch = _ok(http.post("batches", json=body))
    print(batch["id"])


@batches_app.command("list")
def list_(limit: int = 20, base_url: BaseUrl = "http://127.0.0.1:8080/v1", api_key: ApiKey = None) -> None:
    """The key's project's batches, newest first."""
    with _client(base_url, api_key) as http:
        for b in _ok(http.get("batches", params={"limit": limit}))["data"]:
            counts = b["request_counts"]
            created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(b["created_at"]))
            print(f"{b['id']}  {b['status']:11} {created}  {b['endpoint']:22} "
                  f"{counts['completed']}+{counts['failed']}/{counts['total']}")  # fmt: skip


@batches_app.command("status")
def status(
    batch_id: str,
    wait: Annotated[bool, typer.Option(help="Follow it with a progress bar until it ends.")] = False,
    base_url: BaseUrl = "http://127.0.0.1:8080/v1",
    api_key: ApiKey = None,
) -> None:
    """A batch's state and progress (JSON on stdout at the end)."""
    with _client(base_url, api_key) as http:
        batch = _ok(http.get(f"batches/{batch_id}"))
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=not wait) as progress:
            bar = progress.add_task(batch["status"], total=batch["request_counts"]["total"] or None)
            while True:
                counts = batch["request_counts"]
                progress.update(bar, description=batch["status"], total=counts["total"] or None,
                                completed=counts["completed"] + counts["failed"])  # fmt: skip
                if not wait or batch["status"] in TERMINAL:
                    break
                time.sleep(1)
                batch = _ok(http.get(f"batches/{batch_id}"))
    print(json.dumps(batch))


@batches_app.command("cancel")
def cancel(batch_id: str, base_url: BaseUrl = "http://127.0.0.1:8080/v1", api_key: ApiKey = None) -> None:
    """Stop a batch; lines already done stay in its output."""
    with _client(base_url, api_key) as http:
        print(_ok(http.post(f"batches/{batch_id}/cancel"))["status"])


@batches_app.command("download")
def download(
    batch_id: str,
    to: Annotated[Path, typer.Option(help="Directory for <batch>_output.jsonl, <batch>_errors.jsonl.")] = Path("."),
    base_url: BaseUrl = "http://127.0.0.1:8080/v1",
    api_key: ApiKey = None,
) -> None:
    """Write a finished batch's output and error files; prints their paths."""
    with _client(base_url, api_key) as http:
        batch = _ok(http.get(f"batches/{batch_id}"))
        to.mkdir(parents=True, exist_ok=True)
        for field, suffix in (("output_file_id", "output"), ("error_file_id", "errors")):
            if batch.get(field):
                content = http.get(f"files/{batch[field]}/content")
                if content.status_code >= 400:
                    _ok(content)  # says why, and exits
                path = to / f"{batch_id}_{suffix}.jsonl"
                path.write_bytes(content.content)
                print(path)
