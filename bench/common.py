"""Shared helpers for benchmarks: environment header and Markdown/CSV table output."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from ragline.envinfo import environment  # noqa: F401  (re-exported for benchmarks)
from ragline.tables import write_markdown_and_csv

RESULTS = Path(__file__).resolve().parent / "results"


def spread(values: Sequence[float]) -> str:
    """Median with min-max, the form every figure is reported in."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def write_table(
    name: str,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    notes: Sequence[str],
) -> Path:
    markdown = write_markdown_and_csv(RESULTS / name, title, header, rows, notes)
    print(markdown)
    return RESULTS / f"{name}.md"
