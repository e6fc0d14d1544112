"""Rerank@20 per runtime on SciFact through the query path: each runtime's rerank-stage
p50 next to the nDCG@10 it gives, against torch fp32 and against no reranking, in one run.

    python -m bench.rerank_runtimes [--max-queries N] [--model PATH]

Hybrid retrieval over SciFact's corpus chunked at 256 tokens (the defaults), the 300 test
queries one at a time, the top 20 reranked (``rerank.fusion`` as configured). The rerank
p50 is the rerank stage alone (tokenizing and scoring 20 pairs); the query p50 is the
whole path. Rank correlation: each runtime's gate, its scores against torch fp32 ones on
the shipped pairs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.common import SHARED_DATA, environment, write_table
from ragline.evaluation.beir import BeirDataset, load_beir
from ragline.evaluation.evaluate import EvalConfig, EvalRow, Evaluator
from ragline.ingest.runtime import PREFERENCE, installed
from ragline.retrieve.rerank import CrossEncoderReranker, resolve_reranker_path
from ragline.settings import RerankSettings, Settings, load_settings

SCIFACT = SHARED_DATA / "beir" / "scifact"
PACKAGES = ("torch", "sentence-transformers", "openvino", "nncf", "onnxruntime")
TITLE = "Rerank@20 per runtime"
HEADER = [
    "runtime",
    "rerank@20 p50 ms",
    "speed ÷ torch fp32",
    "nDCG@10",
    "Δ nDCG@10 vs torch fp32",
    "rank correlation to fp32 (gate)",
    "query p50 ms",
]


def runtimes() -> list[tuple[str, str]]:
    return [(b, p) for b, p in PREFERENCE if installed(b, p)]


def evaluate(
    settings: Settings, data: BeirDataset, depth: int, reranker: CrossEncoderReranker | None
) -> EvalRow:
    evaluator = Evaluator(settings, data, "scifact", (lambda: reranker) if reranker else None)
    chunking = settings.chunking
    (row,) = evaluator.run([EvalConfig(chunking.size, chunking.overlap, "hybrid", depth)])
    return row


def rerank_rows(
    exports: Path, model: str | None = None, queries: int | None = None
) -> tuple[list[list[object]], list[str]]:
    """The table's rows, then its notes."""
    settings = load_settings()
    if model:
        settings.rerank.model = model
    path = Path(resolve_reranker_path(settings.rerank.model, settings.models_dir))
    config = json.loads((path / "config.json").read_text())
    data = load_beir(SCIFACT, "test")
    if queries:
        data.queries = dict(list(data.queries.items())[:queries])
    plain = evaluate(settings, data, 0, None)
    found: dict[str, tuple[EvalRow, float]] = {}
    for backend, precision in runtimes():
        reranker = CrossEncoderReranker(
            RerankSettings(
                **{**settings.rerank.model_dump(), "backend": backend, "precision": precision}
            ),
            settings.models_dir,
            exports,
        )
        row = evaluate(settings, data, settings.rerank.depth, reranker)
        found[f"{backend}-{precision}"] = (row, reranker.runtime.quality)
    reference = found["torch-fp32"][0]
    rows: list[list[object]] = [
        ["no rerank (hybrid)", "-", "-", f"{plain.ndcg10:.4f}", "-", "-", f"{plain.p50_ms:.1f}"]
    ]
    for name, (row, correlation) in found.items():
        rows.append(
            [
                name,
                f"{row.rerank_p50_ms:.1f}",
                f"{reference.rerank_p50_ms / row.rerank_p50_ms:.2f}x",
                f"{row.ndcg10:.4f}",
                f"{row.ndcg10 - reference.ndcg10:+.4f}",
                f"{correlation:.4f}",
                f"{row.p50_ms:.1f}",
            ]
        )
    notes = [
        environment(PACKAGES),
        f"SciFact test, {plain.queries} queries one at a time; hybrid retrieval, chunks of "
        f"{settings.chunking.size} tokens; the top {settings.rerank.depth} reranked by "
        f"{settings.rerank.model} ({config['num_hidden_layers']} layers, "
        f"`rerank.fusion: {settings.rerank.fusion}`).",
    ]
    return rows, notes


def write(
    exports: Path,
    model: str | None = None,
    queries: int | None = None,
    name: str = "backends-rerank",
) -> None:
    rows, notes = rerank_rows(exports, model, queries)
    write_table(name, TITLE, HEADER, rows, notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="rerank.model to time (default: the settings')")
    parser.add_argument("--exports", type=Path, help="export folder (default: a fresh one)")
    parser.add_argument("--max-queries", type=int, help="the first N test queries")
    parser.add_argument(
        "--name",
        default="backends-rerank",
        help="table name (bench.backends --name X writes X-rerank)",
    )
    args = parser.parse_args()
    exports = args.exports or Path(tempfile.mkdtemp(prefix="ragline-rerank-"))
    write(exports, args.model, args.max_queries, args.name)


if __name__ == "__main__":
    main()
