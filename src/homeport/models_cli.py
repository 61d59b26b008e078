"""`homeport models …`: the served models and their names (`list`), models users add and remove
(`add`, `remove`: the `user_models` table every replica serves), and loading and unloading in a
running server (`load`, `unload`, `status`: its admin API, as models live in its process)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from .cli_common import ConfigOption, console, with_db
from .cli_common import settings as settings_from

__all__ = ["models_app"]

models_app = typer.Typer(help="The served models and the names they answer to.", no_args_is_help=True)


@models_app.command("list")
def models_list(config: ConfigOption = None) -> None:
    """The configured and added models, their pinned ids and aliases, and the OpenAI names that resolve to each."""
    from rich.table import Table

    from .services.inference.registry import ModelRegistry

    settings = settings_from(config)  # the models as configured and added (this command loads none)
    registry = ModelRegistry(settings)
    with_db(settings, registry.sync)
    table = Table("model", "kind", "backend", "pinned id", "aliases", "OpenAI names", "loaded at start")
    for model_id in registry.ids():
        cfg = registry.config(model_id)
        openai = sorted(n for n, target in registry.openai_names.items() if target == model_id)
        aliases = [n for n in registry.names(model_id) if n not in (model_id, cfg.versioned_id, *openai)]
        loads = settings.load_models is None or model_id in settings.load_models
        table.add_row(model_id, cfg.kind, cfg.backend, cfg.versioned_id, ", ".join(aliases) or "—",
                      ", ".join(openai) or "—", "yes" if loads else "no")  # fmt: skip
    out = Console(width=None if sys.stdout.isatty() else 200)  # piped: don't squeeze model ids
    out.print(table)
    if not settings.openai_aliases:
        out.print("OpenAI's model names are off (openai_aliases: false).")


class Template(StrEnum):
    chatml = "chatml"
    gemma = "gemma"


@models_app.command("add")
def models_add(
    source: Annotated[
        str,
        typer.Argument(help="A GGUF file's path; an installed package that ships one; or repo_id[:file.gguf]."),
    ],
    model_id: Annotated[
        str | None, typer.Option("--id", help="The id clients will ask for (default: from the file's name).")
    ] = None,
    template: Annotated[
        Template | None, typer.Option(help="A chat template for a GGUF that carries none.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Serve a GGUF chat model: from a path, an installed package, or fetched from the Hub (HF_ENDPOINT: a mirror).
    Every running replica serves it within model_sync_s (loaded on first use, or `homeport models load ID`)."""
    from .errors import HomeportError
    from .services.inference.model_files import add_user_model, model_from_source
    from .services.inference.registry import ModelRegistry

    settings = settings_from(config)
    try:
        cfg, path = model_from_source(source, settings.data_dir, model_id, template.value if template else None)
        registry = ModelRegistry(settings)
        with_db(settings, registry.sync)
        taken = {n for n in (cfg.id, cfg.versioned_id) if registry.knows(n)}
        with_db(settings, lambda db: add_user_model(db, cfg, taken))
    except HomeportError as exc:
        console.print(exc.message)
        raise typer.Exit(1) from None
    print(f"added {cfg.id} ({path})")


@models_app.command("remove")
def models_remove(model_id: str, config: ConfigOption = None) -> None:
    """Stop serving a model `homeport models add` added (running servers drop it within model_sync_s)."""
    from .services.inference.model_files import remove_user_model

    if not with_db(settings_from(config), lambda db: remove_user_model(db, model_id)):
        console.print(f"{model_id} is not a model `homeport models add` added.")
        raise typer.Exit(1)
    print(f"removed {model_id}")


def _admin_call(method: str, path: str, base_url: str | None, api_key: str | None) -> dict:
    """A call to a running server's admin API (models are loaded in the server's process)."""
    import httpx

    key = api_key or os.environ.get("HOMEPORT_ADMIN_KEY") or os.environ.get("OPENAI_API_KEY")
    if not key:
        console.print("Give an admin key: --api-key, or HOMEPORT_ADMIN_KEY / OPENAI_API_KEY.")
        raise typer.Exit(2)
    root = (base_url or os.environ.get("OPENAI_BASE_URL") or "http://127.0.0.1:8080/v1").rstrip("/")
    answer = httpx.request(method, f"{root}{path}", headers={"Authorization": f"Bearer {key}"}, timeout=600)
    if answer.status_code >= 400:
        console.print(f"{answer.status_code}: {answer.json().get('error', {}).get('message', answer.text)}")
        raise typer.Exit(1)
    return dict(answer.json())


ServerUrl = Annotated[str | None, typer.Option(help="The server's API root (default: OPENAI_BASE_URL, or local).")]
AdminKeyOption = Annotated[str | None, typer.Option(help="An admin key (default: HOMEPORT_ADMIN_KEY).")]


@models_app.command("load")
def models_load(model_id: str, base_url: ServerUrl = None, api_key: AdminKeyOption = None) -> None:
    """Load a configured model in the running server (refused if it would not fit models_memory_mb)."""
    state = _admin_call("POST", f"/homeport/models/{model_id}/load", base_url, api_key)
    print(f"{state['id']}: {'loaded' if state['loaded'] else 'not loaded'} ({state['size_mb']} MB)")


@models_app.command("unload")
def models_unload(model_id: str, base_url: ServerUrl = None, api_key: AdminKeyOption = None) -> None:
    """Unload a model from the running server, freeing its memory."""
    state = _admin_call("POST", f"/homeport/models/{model_id}/unload", base_url, api_key)
    print(f"{state['id']}: {'loaded' if state['loaded'] else 'unloaded'}")


@models_app.command("status")
def models_status(base_url: ServerUrl = None, api_key: AdminKeyOption = None) -> None:
    """What the running server has loaded, the weights' sizes, how long each model has been idle."""
    found = _admin_call("GET", "/homeport/models", base_url, api_key)
    for m in found["data"]:
        idle = "never used" if m["idle_s"] is None else f"idle {m['idle_s']} s"
        state = "loaded" if m["loaded"] else "unloaded"
        print(f"{m['id']:<24} {m['kind']:<14} {state:<9} {m['size_mb']:>8} MB  {idle}")
    budget, keep = found["memory_budget_mb"], found["keep_alive_s"]
    print(f"memory budget: {f'{budget} MB' if budget else 'none'}; keep-alive: {f'{keep} s' if keep else 'off'}")
