"""Shared helpers for benchmarks: environment header and Markdown/CSV table output."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path

from ragline.envinfo import environment  # noqa: F401  (re-exported for benchmarks)

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
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {title}",
        "",
        *notes,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    markdown = "\n".join(lines) + "\n"
    path = RESULTS / f"{name}.md"
    path.write_text(markdown)
    with (RESULTS / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    print(markdown)
    return path
