"""``ragline query``, ``ragline eval`` and ``ragline reranker train``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ragline.cli.app import CollectionOpt, app, collection_name, console, err_console, fail
from ragline.cli.app import settings as load

if TYPE_CHECKING:
    from ragline.retrieve.types import Mode


@app.command()
def query(
    question: Annotated[str, typer.Argument(help="the question")],
    collection: CollectionOpt = None,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k")] = None,
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25")] = "hybrid",
    rerank: Annotated[bool | None, typer.Option(help="cross-encoder rerank")] = None,
    source: Annotated[list[str] | None, typer.Option(help="only these sources (globs)")] = None,
) -> None:
    """Retrieve passages for a question and show scores, timings and compressed context."""
    from ragline.ingest.collection import CollectionError
    from ragline.retrieve.types import MODES, MetadataFilter, RetrievalRequest
    from ragline.service.collections import CollectionService
    from ragline.service.components import Components, RerankerUnavailable

    settings = load()
    if mode not in MODES:
        fail(f"unknown mode {mode!r}; choose from {MODES}")
    components = Components(settings)
    use_rerank = rerank if rerank is not None else settings.rerank.enabled
    if use_rerank:
        try:
            components.reranker()
        except RerankerUnavailable as exc:
            if rerank:
                fail(str(exc))
            err_console.print(f"[yellow]reranking off:[/] {exc}")
            use_rerank = False
    try:
        store = CollectionService(components).open(collection_name(settings, collection))
        store.repair()
    except CollectionError as exc:
        fail(str(exc))
    retriever = components.retriever(store)
    request = RetrievalRequest(
        question,
        top_k=top_k,
        mode=mode,
        rerank=use_rerank,
        filters=MetadataFilter(sources=source or []),
    )
    try:
        result = retriever.run(request)
    finally:
        store.close()
    table = Table("#", "score", "source", "where", "text")
    for number, passage in enumerate(result.passages, start=1):
        where = " ".join(
            part
            for part in (
                f"p.{passage.page}" if passage.page else "",
                passage.sheet or "",
                " > ".join(passage.headings),
            )
            if part
        )
        snippet = " ".join(passage.text.split())[:160]
        table.add_row(
            str(number), f"{passage.score:.3f}", Path(passage.source).name, where, snippet
        )
    console.print(table)
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in result.timings.stages.items())
    console.print(f"[dim]{stages}[/]")
    if result.context is not None:
        console.print(
            f"[bold]context[/] ({result.context.tokens_in} → {result.context.tokens_out} tokens):"
        )
        console.print(result.context.text or "[dim](nothing relevant enough)[/]")


@app.command("eval")
def evaluate(
    dataset: Annotated[
        Path,
        typer.Argument(
            help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/), or a folder of files/ "
            "with queries.jsonl + qrels/ keyed by file path, or questions.jsonl"
        ),
    ],
    split: Annotated[str, typer.Option(help="qrels split to score")] = "test",
    modes: Annotated[
        str, typer.Option(help="comma list of dense,bm25,hybrid")
    ] = "dense,bm25,hybrid",
    sweep: Annotated[
        list[str] | None,
        typer.Option(help="e.g. chunk_size=128,256 overlap=0,32 rerank_depth=0,20"),
    ] = None,
    out: Annotated[Path, typer.Option(help="folder for eval.csv/.md/.png")] = Path("var/eval"),
    max_queries: Annotated[int | None, typer.Option(help="evaluate the first N queries")] = None,
    baselines: Annotated[
        bool, typer.Option(help="files: also rank whole documents (plain MiniLM, BM25)")
    ] = True,
) -> None:
    """Score retrieval on a BEIR dataset (quality and latency, table + plot), or on a folder
    of files ingested through the real parse → chunk path, scored per document."""
    from ragline.envinfo import environment
    from ragline.evaluation.beir import load_beir
    from ragline.evaluation.evaluate import Evaluator, parse_sweep
    from ragline.evaluation.report import write_results
    from ragline.retrieve.types import MODES
    from ragline.service.components import Components, RerankerUnavailable

    settings = load()
    try:
        grid = parse_sweep(sweep or [])
    except ValueError as exc:
        fail(str(exc))
    names = [m.strip() for m in modes.split(",") if m.strip()]
    if unknown := set(names) - set(MODES):
        fail(f"unknown modes {sorted(unknown)}; choose from {MODES}")
    chosen = [m for m in MODES if m in names]
    from ragline.evaluation.files import is_file_eval

    if is_file_eval(dataset):
        if sweep:
            fail("--sweep is for BEIR folders; set chunking options in the settings instead")
        _evaluate_files(dataset, split, chosen, out, max_queries, baselines)
        return
    if not (dataset / "corpus.jsonl").exists():
        fail(f"{dataset} is neither a BEIR folder (no corpus.jsonl) nor a folder of files/")
    data = load_beir(dataset, split)
    if max_queries:
        data.queries = dict(list(data.queries.items())[:max_queries])

    components = Components(settings)
    needs_reranker = any(depth > 0 for depth in grid.get("rerank_depth", [0]))
    if needs_reranker:
        try:
            components.reranker()
        except RerankerUnavailable as exc:
            fail(str(exc))
    evaluator = Evaluator(
        settings,
        data,
        dataset.name,
        components.reranker if needs_reranker else None,
        log=console.print,
    )
    rows = evaluator.run(evaluator.configs(grid, chosen))
    notes = [
        f"`ragline eval {dataset.name} --split {split}` · {len(data.queries)} queries · "
        f"embedding {settings.embedding.model} ({evaluator.query_embedder.runtime_name})"
        + (
            f" · reranker {settings.rerank.model} ({components.reranker().runtime.runtime.name})"
            if needs_reranker
            else ""
        ),
        "Environment: " + environment(["faiss-cpu", "tantivy", "sentence-transformers", "torch"]),
        "Latency: whole query path per query (embed, search, fuse, rerank), one at a time; "
        "rerank_p50_ms: the rerank stage alone.",
    ]
    path = write_results(rows, out, f"Retrieval on {dataset.name} ({split})", notes)
    console.print(f"wrote {path}, eval.csv and eval.png in {out}")


def _evaluate_files(
    dataset: Path,
    split: str,
    modes: list[Mode],
    out: Path,
    max_queries: int | None,
    baselines: bool,
) -> None:
    from ragline.envinfo import environment
    from ragline.evaluation.file_report import write_file_results
    from ragline.evaluation.files import FileEvaluator, load_file_eval

    settings = load()
    data = load_file_eval(dataset, split)
    if max_queries:
        data.queries = dict(list(data.queries.items())[:max_queries])
    evaluator = FileEvaluator(settings, data, dataset.name, log=console.print)
    try:
        summary = evaluator.ingest()
        rows = [evaluator.retrieval(mode) for mode in modes]
        if baselines:
            rows += evaluator.baselines()
    finally:
        evaluator.close()
    for row in rows:
        console.print(
            f"{row.label:34} recall@5 {row.recall5:.4f}  nDCG@10 {row.ndcg10:.4f}  "
            f"p50 {row.p50_ms:.1f} ms"
        )
    notes = [
        f"`ragline eval {dataset.name} --split {split}` · {len(data.queries)} queries · "
        f"embedding {settings.embedding.model} · chunk {settings.chunking.size} / overlap "
        f"{settings.chunking.overlap}",
        "Environment: " + environment(["unstructured", "faiss-cpu", "bm25s", "torch"]),
        "Per document: a file counts once however many of its chunks rank; recall@k is the "
        "share of judged files among the files of the top k passages.",
    ]
    path = write_file_results(summary, rows, out, f"Retrieval through files: {dataset.name}", notes)
    console.print(f"wrote {path} and file_eval.csv in {out}")


reranker_app = typer.Typer(no_args_is_help=True, help="the cross-encoder reranker")
app.add_typer(reranker_app, name="reranker")


@reranker_app.command("train")
def train_reranker_command(
    dataset: Annotated[Path, typer.Argument(help="BEIR folder with qrels/train.tsv (SciFact)")],
    epochs: Annotated[int, typer.Option()] = 3,
    negatives: Annotated[int, typer.Option(help="BM25 hard negatives per group")] = 7,
    max_length: Annotated[int, typer.Option(help="tokens per (query, doc) pair")] = 128,
    max_queries: Annotated[int | None, typer.Option()] = None,
    layers: Annotated[
        int, typer.Option(help="keep the first N of the encoder's 6 layers (fewer: faster)")
    ] = 4,
    output: Annotated[Path | None, typer.Option(help="default: the builtin model's folder")] = None,
) -> None:
    """Fine-tune the default cross-encoder from the shipped MiniLM on the train split only."""
    from ragline.retrieve.rerank import BUILTIN_RERANKER_DIR
    from ragline.training.reranker import TrainingConfig, train_reranker

    settings = load()
    if not (dataset / "qrels" / "train.tsv").exists():
        fail(f"{dataset} has no qrels/train.tsv")
    target = output or settings.models_dir / BUILTIN_RERANKER_DIR
    config = TrainingConfig(
        epochs=epochs,
        negatives_per_query=negatives,
        max_length=max_length,
        max_queries=max_queries,
        layers=layers,
    )
    path = train_reranker(dataset, target, config)
    console.print(f"reranker saved to {path}")
