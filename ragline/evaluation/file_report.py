"""File-based evaluation results as Markdown and CSV: retrieval per document, and what
parsing and chunking made of the files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ragline.evaluation.files import TINY_CHUNK_TOKENS, FileEvalRow, IngestSummary
from ragline.ingest.types import SMALL_CHUNK_TOKENS, ChunkSizeStats
from ragline.tables import write_markdown_and_csv

HEADER = ["retrieval", "ranks", "recall@5", "recall@10", "nDCG@10", "MRR@10", "p50_ms", "queries"]


def row_cells(row: FileEvalRow) -> list[object]:
    return [
        row.label,
        row.unit,
        f"{row.recall5:.4f}",
        f"{row.recall10:.4f}",
        f"{row.ndcg10:.4f}",
        f"{row.mrr10:.4f}",
        f"{row.p50_ms:.1f}",
        row.queries,
    ]


def _stats_cells(stats: ChunkSizeStats) -> list[str]:
    median = "-" if stats.median_tokens is None else f"{stats.median_tokens:.0f}"
    small = "-" if stats.share_small is None else f"{stats.share_small:.1%}"
    return [str(stats.chunks), median, small]


def chunk_table(summary: IngestSummary) -> list[str]:
    """Markdown lines: chunk sizes overall and per file type."""
    lines = [
        "",
        f"Chunks ({summary.documents} documents ingested, {summary.failed} failed, "
        f"{summary.boilerplate_dropped} boilerplate elements left out, {summary.merged} small "
        f"chunks merged, {summary.seconds:.0f} s to parse, chunk and embed): "
        f"{summary.share_tiny:.1%} of chunks under {TINY_CHUNK_TOKENS} tokens.",
        "",
        f"| file type | chunks | median tokens | under {SMALL_CHUNK_TOKENS} tokens |",
        "|---|---|---|---|",
        "| all | " + " | ".join(_stats_cells(summary.chunks)) + " |",
    ]
    lines += [
        f"| {kind} | " + " | ".join(_stats_cells(stats)) + " |"
        for kind, stats in summary.by_type.items()
    ]
    return lines


def write_file_results(
    summary: IngestSummary,
    rows: Sequence[FileEvalRow],
    out: Path,
    title: str,
    notes: Sequence[str],
    stem: str = "file_eval",
) -> Path:
    write_markdown_and_csv(
        out / stem, title, HEADER, [row_cells(r) for r in rows], notes, chunk_table(summary)
    )
    return out / f"{stem}.md"
