"""The typer application and what every command shares: consoles, settings, failure."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.console import Console

from ragline.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ragline: RAG serving stack")
console = Console()
err_console = Console(stderr=True)

CollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="collection name (default from config)")
]


def settings() -> Settings:
    return load_settings()


def collection_name(settings: Settings, name: str | None) -> str:
    return name or settings.storage.default_collection


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
