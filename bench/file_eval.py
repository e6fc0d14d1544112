"""Retrieval through files: SciFact written as web pages, parsed, chunked and embedded by
ragline's own ingest path, scored per document.

    python -m bench.file_eval [--quick] [--out DIR]

One run: writes the pages (``ragline.evaluation.fileset``: HTML, Markdown and plain-text
pages of four sites, each with its menu, sidebar and footer on every page) under var/,
ingests them with the settings in force, then

- chunk sizes, and those the chunker before issue 13 (commit 7cd3bb3, read from git)
  makes of the same parsed elements;
- on SciFact's **train** queries: hybrid retrieval at several
  ``retrieval.same_document_penalty`` values (the default is chosen here, not on test);
- on the **test** queries: ragline dense, BM25 and hybrid as configured, hybrid without
  diversity by document, and whole-document baselines (plain MiniLM and BM25 over the
  clean abstracts, plain MiniLM over everything parsing found in each file).

Writes ``file_eval.md`` and ``.csv`` to bench/results/ (``--quick``: 40 test queries over
300 pages, into var/bench-quick/).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from ragline.envinfo import environment
from ragline.evaluation.beir import load_beir
from ragline.evaluation.file_report import HEADER, chunk_table, row_cells
from ragline.evaluation.files import (
    TINY_CHUNK_TOKENS,
    FileEvalRow,
    FileEvaluator,
    load_file_eval,
)
from ragline.evaluation.fileset import select, write_fileset
from ragline.ingest.tokens import HFTokenCounter
from ragline.ingest.types import SMALL_CHUNK_TOKENS, ChunkSizeStats
from ragline.settings import PROJECT_ROOT, Settings, load_settings
from ragline.tables import write_markdown_and_csv

SCIFACT = PROJECT_ROOT.parent / "shared" / "data" / "beir" / "scifact"
RESULTS = PROJECT_ROOT / "bench" / "results"
QUICK_RESULTS = PROJECT_ROOT / "var" / "bench-quick"
LEGACY_COMMIT = "7cd3bb3"  # main before issue 13: one chunk per title line
PENALTIES = (0.0, 0.25, 0.5, 0.75, 1.0)


def legacy_chunker_module() -> ModuleType | None:
    """ingest/chunk.py as of LEGACY_COMMIT, or None outside a git checkout."""
    try:
        source = subprocess.run(
            ["git", "show", f"{LEGACY_COMMIT}:ingest/chunk.py"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("ragline_legacy_chunk", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{LEGACY_COMMIT}:ingest/chunk.py", "exec"), module.__dict__)
    return module


def legacy_chunk_sizes(
    evaluator: FileEvaluator, settings: Settings
) -> tuple[ChunkSizeStats, float] | None:
    module = legacy_chunker_module()
    if module is None:
        return None
    chunker = module.Chunker(settings.chunking, HFTokenCounter(evaluator.embedder.model_path))
    counts = [c.token_count for d in evaluator.parsed if d.ok for c in chunker.run(d)]
    tiny = sum(n < TINY_CHUNK_TOKENS for n in counts) / max(1, len(counts))
    return ChunkSizeStats.of(counts), tiny


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 test queries over 300 pages")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--scifact", type=Path, default=SCIFACT)
    args = parser.parse_args()
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS)
    work = PROJECT_ROOT / "var" / ("file-eval-quick" if args.quick else "file-eval")
    pages = work / "scifact-pages"
    started = time.perf_counter()

    test = load_beir(args.scifact, "test")
    chosen = select(test, 40, 300) if args.quick else test
    if pages.exists():
        shutil.rmtree(pages)
    written = write_fileset(chosen, pages, "test", {"train": load_beir(args.scifact, "train")})
    print(f"wrote {written} pages to {pages}", flush=True)

    settings = load_settings(storage={"data_dir": work / "var"})
    test_set = load_file_eval(pages, "test")
    train_set = load_file_eval(pages, "train")
    evaluator = FileEvaluator(settings, test_set, pages.name)
    summary = evaluator.ingest()
    before = legacy_chunk_sizes(evaluator, settings)

    def variant(penalty: float) -> Settings:
        copy = settings.model_copy(deep=True)
        copy.retrieval.same_document_penalty = penalty
        return copy

    tuning = [
        evaluator.retrieval("hybrid", f"hybrid, penalty {p}", variant(p), train_set)
        for p in PENALTIES
    ]
    for row in tuning:
        print(f"train {row.label:24} recall@5 {row.recall5:.4f} nDCG@10 {row.ndcg10:.4f}")
    default = settings.retrieval.same_document_penalty
    rows: list[FileEvalRow] = [
        evaluator.retrieval("hybrid", f"ragline hybrid (penalty {default})"),
        evaluator.retrieval("dense", f"ragline dense (penalty {default})"),
        evaluator.retrieval("bm25", f"ragline bm25 (penalty {default})"),
        evaluator.retrieval("hybrid", "ragline hybrid, no diversity", variant(0.0)),
        *evaluator.baselines(),
    ]
    evaluator.close()
    for row in rows:
        print(f"test {row.label:36} recall@5 {row.recall5:.4f} nDCG@10 {row.ndcg10:.4f}")

    chunking = settings.chunking
    notes = [
        f"`python -m bench.file_eval{' --quick' if args.quick else ''}` · SciFact test: "
        f"{len(test_set.queries)} queries over {summary.documents} pages "
        f"(HTML, Markdown, plain text; written by ragline/evaluation/fileset.py) · embedding "
        f"{settings.embedding.model} ({evaluator.embedder.runtime_name}) · "
        f"chunk {chunking.size} / overlap {chunking.overlap}, "
        f"min_tokens {chunking.min_tokens}, boilerplate_min_documents "
        f"{chunking.boilerplate_min_documents} · top {10} passages per question · "
        f"{(time.perf_counter() - started) / 60:.0f} minutes in all",
        "Environment: "
        + environment(["unstructured", "faiss-cpu", "tantivy", "torch", "openvino"]),
        "Per document: a page counts once however many of its chunks rank; recall@k is the "
        "share of the judged pages among the pages of the top k passages. Whole-document "
        "rows embed each document as one vector (MiniLM reads its first 256 tokens).",
    ]
    footer = chunk_table(summary)
    if before is not None:
        stats, tiny = before
        median = "-" if stats.median_tokens is None else f"{stats.median_tokens:.0f}"
        small = "-" if stats.share_small is None else f"{stats.share_small:.1%}"
        footer += [
            "",
            f"The chunker before issue 13 (commit {LEGACY_COMMIT}) on the same parsed elements: "
            f"{stats.chunks} chunks, median {median} tokens, {small} under "
            f"{SMALL_CHUNK_TOKENS} tokens, {tiny:.1%} under {TINY_CHUNK_TOKENS}.",
        ]
    footer += [
        "",
        f"Diversity by document, chosen on SciFact **train** ({len(train_set.queries)} "
        "queries, same pages): hybrid at each `retrieval.same_document_penalty`.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *["| " + " | ".join(str(c) for c in row_cells(row)) + " |" for row in tuning],
    ]
    write_markdown_and_csv(
        out / "file_eval",
        "Retrieval through files: SciFact as web pages",
        HEADER,
        [row_cells(r) for r in rows],
        notes,
        footer,
    )
    print(f"wrote {out / 'file_eval.md'}")


if __name__ == "__main__":
    main()
