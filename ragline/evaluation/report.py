"""Evaluation results as CSV, Markdown and a quality-vs-latency plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ragline.evaluation.evaluate import EvalRow
from ragline.tables import write_markdown_and_csv

HEADER = [
    "mode",
    "rerank_depth",
    "chunk_size",
    "overlap",
    "nDCG@10",
    "recall@100",
    "MRR@10",
    "p50_ms",
    "p95_ms",
    "queries",
    "rerank_p50_ms",
]


def _cells(row: EvalRow) -> list[object]:
    c = row.config
    return [
        c.mode,
        c.rerank_depth,
        c.chunk_size,
        c.overlap,
        f"{row.ndcg10:.4f}",
        f"{row.recall100:.4f}",
        f"{row.mrr10:.4f}",
        f"{row.p50_ms:.1f}",
        f"{row.p95_ms:.1f}",
        row.queries,
        f"{row.rerank_p50_ms:.1f}" if row.config.rerank_depth else "-",
    ]


def pareto_front(rows: Sequence[EvalRow]) -> list[EvalRow]:
    """Configurations no other beats on both quality (higher) and p50 latency (lower)."""
    front: list[EvalRow] = []
    for row in sorted(rows, key=lambda r: (r.p50_ms, -r.ndcg10)):
        if not front or row.ndcg10 > front[-1].ndcg10:
            front.append(row)
    return front


def write_results(rows: Sequence[EvalRow], out_dir: Path, title: str, notes: Sequence[str]) -> Path:
    front = pareto_front(rows)
    footer = ["", "Quality/latency frontier: " + ", ".join(r.config.label for r in front)]
    write_markdown_and_csv(
        out_dir / "eval", title, HEADER, [_cells(r) for r in rows], notes, footer
    )
    _plot(rows, front, out_dir / "eval.png", title)
    return out_dir / "eval.md"


def _plot(rows: Sequence[EvalRow], front: Sequence[EvalRow], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    for mode, marker in (("dense", "o"), ("bm25", "s"), ("hybrid", "^")):
        chosen = [r for r in rows if r.config.mode == mode]
        if chosen:
            axis.scatter(
                [r.p50_ms for r in chosen],
                [r.ndcg10 for r in chosen],
                marker=marker,
                label=mode,
                s=40,
            )
    for row in rows:
        axis.annotate(
            row.config.label,
            (row.p50_ms, row.ndcg10),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    axis.plot(
        [r.p50_ms for r in front], [r.ndcg10 for r in front], "k--", linewidth=0.8, label="frontier"
    )
    axis.set_xscale("log")
    axis.set_xlabel("p50 latency per query (ms, log scale)")
    axis.set_ylabel("nDCG@10")
    axis.set_title(title)
    axis.legend()
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
