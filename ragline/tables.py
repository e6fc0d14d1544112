"""Result tables written the same way everywhere: a Markdown page and a CSV beside it."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def write_markdown_and_csv(
    stem: Path,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    notes: Sequence[str] = (),
    footer: Sequence[str] = (),
) -> str:
    """Write ``<stem>.md`` and ``<stem>.csv``; returns the Markdown."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# {title}",
        "",
        *notes,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    markdown = "\n".join([*lines, *footer]) + "\n"
    stem.with_suffix(".md").write_text(markdown)
    with stem.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return markdown
