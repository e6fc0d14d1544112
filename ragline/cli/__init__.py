"""The ``ragline`` command line (typer + rich): the top layer, over the service layer and
the HTTP API. Each module below adds its commands to the one ``app``."""

from ragline.cli import collections, config, retrieval, serving  # noqa: F401  (registers commands)
from ragline.cli.app import app


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="ragline")


__all__ = ["app", "main"]
