"""``ragline config``: the settings in force, and the generated defaults file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ragline.cli.app import app, console
from ragline.cli.app import settings as load

config_app = typer.Typer(no_args_is_help=True, help="settings")
app.add_typer(config_app, name="config")


@config_app.command("show")
def show() -> None:
    """Print the settings in force (defaults < YAML < RAGLINE_* environment)."""
    from ragline.config_file import render_effective

    console.print(render_effective(load()), markup=False, highlight=False, end="")


@config_app.command("defaults")
def defaults(
    write: Annotated[Path | None, typer.Option(help="write to this file instead")] = None,
) -> None:
    """Print every setting with its default and documentation (configs/default.yaml)."""
    from ragline.config_file import render_defaults

    text = render_defaults()
    if write is None:
        console.print(text, markup=False, highlight=False, end="")
        return
    write.write_text(text)
    console.print(f"wrote {write}")
