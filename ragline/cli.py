"""The ``ragline`` command line (typer + rich)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ragline.settings import Settings, load_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ragline: RAG serving stack")
console = Console()
err_console = Console(stderr=True)

CollectionOpt = Annotated[
    str | None, typer.Option("--collection", "-c", help="collection name (default from config)")
]


def _settings() -> Settings:
    return load_settings()


def _fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders to ingest")],
    collection: CollectionOpt = None,
    force: Annotated[bool, typer.Option(help="re-parse files even if unchanged")] = False,
    workers: Annotated[int | None, typer.Option(help="parsing processes")] = None,
) -> None:
    """Parse, chunk, embed and index documents into a collection."""
    from ingest.collection import Collection, CollectionError
    from ingest.pipeline import IngestPipeline
    from ragline.progress import RichIngestProgress, render_report

    settings = _settings()
    if workers is not None:
        settings.parsing.workers = workers
    name = collection or settings.storage.default_collection
    try:
        store = Collection.open(settings.storage.collections_dir, name, settings.index, create=True)
    except CollectionError as exc:
        _fail(str(exc))
        return
    try:
        with RichIngestProgress(console) as progress:
            report = IngestPipeline(settings, store, progress=progress).run(paths, force=force)
    except (CollectionError, FileNotFoundError) as exc:
        _fail(str(exc))
        return
    finally:
        store.close()
    render_report(console, report)


@app.command("collections")
def list_collections() -> None:
    """List collections with their document and chunk counts."""
    from ingest.collection import Collection

    settings = _settings()
    root = settings.storage.collections_dir
    table = Table("collection", "documents", "chunks", "index", "generation", "size", "model")
    for name in Collection.names(root):
        store = Collection.open(root, name, settings.index)
        info = store.info()
        store.close()
        table.add_row(
            info.name,
            str(info.documents),
            str(info.chunks),
            info.index_kind,
            str(info.generation),
            f"{info.size_bytes / 2**20:.1f} MiB",
            info.embedding_model or "-",
        )
    console.print(table)


@app.command()
def delete(
    sources: Annotated[list[Path] | None, typer.Argument(help="documents to remove")] = None,
    collection: CollectionOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="delete the whole collection")] = False,
) -> None:
    """Delete documents from a collection, or the whole collection with --all."""
    from ingest.collection import Collection, CollectionError

    settings = _settings()
    name = collection or settings.storage.default_collection
    root = settings.storage.collections_dir
    try:
        if all_:
            Collection.drop(root, name)
            console.print(f"deleted collection [bold]{name}[/]")
            return
        if not sources:
            _fail("name documents to delete, or pass --all")
            return
        store = Collection.open(root, name, settings.index)
        with store.writer_lock():
            found = store.delete_documents([str(Path(s).resolve()) for s in sources])
        store.close()
    except CollectionError as exc:
        _fail(str(exc))
        return
    missing = {str(Path(s).resolve()) for s in sources} - set(found)
    for source in found:
        console.print(f"deleted {source}")
    for source in sorted(missing):
        err_console.print(f"[yellow]not in collection:[/] {source}")
    if missing:
        raise typer.Exit(1)


@app.command("eval")
def evaluate(
    dataset: Annotated[
        Path, typer.Argument(help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
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
) -> None:
    """Score retrieval configurations on a BEIR dataset: quality and latency, table + plot."""
    from ragline.beir import load_beir
    from ragline.envinfo import environment
    from retrieve.eval_report import write_results
    from retrieve.evaluate import Evaluator, parse_sweep
    from retrieve.rerank import CrossEncoderReranker
    from retrieve.types import MODES

    settings = _settings()
    try:
        grid = parse_sweep(sweep or [])
    except ValueError as exc:
        _fail(str(exc))
        return
    names = [m.strip() for m in modes.split(",") if m.strip()]
    if unknown := set(names) - set(MODES):
        _fail(f"unknown modes {sorted(unknown)}; choose from {MODES}")
    chosen = [m for m in MODES if m in names]
    if not (dataset / "corpus.jsonl").exists():
        _fail(f"{dataset} is not a BEIR folder (no corpus.jsonl)")
    data = load_beir(dataset, split)
    if max_queries:
        data.queries = dict(list(data.queries.items())[:max_queries])

    def make_reranker() -> CrossEncoderReranker:
        return CrossEncoderReranker(settings.rerank, settings.models_dir)

    needs_reranker = any(depth > 0 for depth in grid.get("rerank_depth", [0]))
    evaluator = Evaluator(
        settings, data, dataset.name, make_reranker if needs_reranker else None, log=console.print
    )
    rows = evaluator.run(evaluator.configs(grid, chosen))
    notes = [
        f"`ragline eval {dataset.name} --split {split}` · {len(data.queries)} queries · "
        f"embedding {settings.embedding.model}"
        + (f" · reranker {settings.rerank.model}" if needs_reranker else ""),
        "Environment: " + environment(["faiss-cpu", "bm25s", "sentence-transformers", "torch"]),
        "Latency: whole query path per query (embed, search, fuse, rerank), one at a time.",
    ]
    path = write_results(rows, out, f"Retrieval on {dataset.name} ({split})", notes)
    console.print(f"wrote {path}, eval.csv and eval.png in {out}")


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
    from ingest.collection import Collection, CollectionError
    from ingest.embed import Embedder
    from retrieve.rerank import CrossEncoderReranker, resolve_reranker_path
    from retrieve.retriever import Retriever
    from retrieve.types import MODES, MetadataFilter, RetrievalRequest

    settings = _settings()
    if mode not in MODES:
        _fail(f"unknown mode {mode!r}; choose from {MODES}")
    name = collection or settings.storage.default_collection
    try:
        store = Collection.open(settings.storage.collections_dir, name, settings.index)
    except CollectionError as exc:
        _fail(str(exc))
        return
    reranker = None
    if rerank if rerank is not None else settings.rerank.enabled:
        try:
            resolve_reranker_path(settings.rerank.model, settings.models_dir)
            reranker = CrossEncoderReranker(settings.rerank, settings.models_dir)
        except FileNotFoundError as exc:
            if rerank:
                _fail(str(exc))
            err_console.print(f"[yellow]reranking off:[/] {exc}")
    retriever = Retriever(settings, store, Embedder(settings.embedding), reranker=reranker)
    request = RetrievalRequest(
        question,
        top_k=top_k,
        mode=mode,  # type: ignore[arg-type]
        rerank=reranker is not None,
        filters=MetadataFilter(sources=source or []),
    )
    result = retriever.run(request)
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
    store.close()


reranker_app = typer.Typer(no_args_is_help=True, help="the cross-encoder reranker")
app.add_typer(reranker_app, name="reranker")


@reranker_app.command("train")
def train_reranker_command(
    dataset: Annotated[Path, typer.Argument(help="BEIR folder with qrels/train.tsv (SciFact)")],
    epochs: Annotated[int, typer.Option()] = 2,
    negatives: Annotated[int, typer.Option(help="BM25 hard negatives per group")] = 7,
    max_length: Annotated[int, typer.Option(help="tokens per (query, doc) pair")] = 128,
    max_queries: Annotated[int | None, typer.Option()] = None,
    output: Annotated[Path | None, typer.Option(help="default: the builtin model's folder")] = None,
) -> None:
    """Fine-tune the default cross-encoder from the shipped MiniLM on the train split only."""
    from retrieve.rerank import BUILTIN_RERANKER_DIR
    from retrieve.train_reranker import train_reranker

    settings = _settings()
    if not (dataset / "qrels" / "train.tsv").exists():
        _fail(f"{dataset} has no qrels/train.tsv")
    target = output or settings.models_dir / BUILTIN_RERANKER_DIR
    path = train_reranker(
        dataset,
        target,
        epochs=epochs,
        negatives_per_query=negatives,
        max_length=max_length,
        max_queries=max_queries,
    )
    console.print(f"reranker saved to {path}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default: api.host")] = None,
    port: Annotated[int | None, typer.Option(help="default: api.port")] = None,
) -> None:
    """Serve the HTTP API (OpenAI-compatible chat with citations) with the embedded engine."""
    from generate.models import ModelNotPreparedError, is_prepared

    settings = _settings()
    try:
        prepared = is_prepared(settings.generation.model, settings.models_dir)
    except ValueError as exc:
        _fail(str(exc))
        return
    if not prepared:
        _fail(
            f"generation model {settings.generation.model!r} is not prepared in "
            f"{settings.models_dir}: run `ragline model prepare` first"
        )
    from api.server import serve as run_server

    try:
        run_server(settings, host, port)
    except ModelNotPreparedError as exc:
        _fail(str(exc))


@app.command()
def chat(
    question: Annotated[
        str | None, typer.Argument(help="ask once and exit; without it, a conversation")
    ] = None,
    collection: CollectionOpt = None,
    url: Annotated[str | None, typer.Option(help="default: http://<api.host>:<api.port>")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="RAGLINE_API_KEY")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="answer length limit")] = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the server to start")] = 0,
) -> None:
    """Ask a running `ragline serve` questions; answers stream, cited sources follow."""
    from api.client import ChatClient, ChatError, Reply, format_source

    settings = _settings()
    name = collection or settings.storage.default_collection
    client = ChatClient(url or f"http://{settings.api.host}:{settings.api.port}", api_key)
    if wait and not client.wait_ready(wait):
        _fail(f"no server answered at {client.base_url} within {wait:.0f} s")
    history: list[dict[str, str]] = []
    try:
        while True:
            asked = question
            if asked is None:
                try:
                    asked = console.input("[bold]you>[/] ").strip()
                except (EOFError, KeyboardInterrupt):
                    console.print()
                    return
                if asked.lower() in {"exit", "quit", ":q"}:
                    return
                if not asked:
                    continue
            messages = [*history, {"role": "user", "content": asked}]
            reply = Reply()
            try:
                for piece in client.stream(messages, name, reply, max_tokens):
                    console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
            except ChatError as exc:
                console.print()
                if question is not None:
                    _fail(str(exc))
                err_console.print(f"[bold red]error:[/] {exc}")
                continue
            console.print()
            # The cited sources; when the answer cites none, those its sentences match;
            # failing that, the ones it was given.
            if reply.cited:
                shown, title = reply.cited, "sources cited"
            elif reply.attributed:
                shown, title = reply.attributed, "sources the answer draws on (not cited by number)"
            else:
                shown, title = reply.sources, "sources given (none cited)"
            if shown:
                console.print(f"[bold]{title}[/]")
            for source in shown:
                console.print("  " + format_source(source), markup=False, highlight=False)
            if question is not None:
                return
            history += [messages[-1], {"role": "assistant", "content": reply.text}]
    finally:
        client.close()


model_app = typer.Typer(no_args_is_help=True, help="the generation model")
app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare(
    force: Annotated[bool, typer.Option(help="convert again even if already prepared")] = False,
) -> None:
    """Convert the embedded GGUF model into a checkpoint vLLM loads (once; cached)."""
    from generate.models import (
        BUILTIN_PREFIX,
        ModelNotPreparedError,
        is_prepared,
        prepare_model,
    )

    settings = _settings()
    name = settings.generation.model
    if not name.startswith(BUILTIN_PREFIX):
        console.print(f"{name} is loaded by vLLM directly; nothing to prepare")
        return
    if is_prepared(name, settings.models_dir) and not force:
        console.print(f"{name}: already prepared")
        return
    try:
        with console.status(f"converting {name} (GGUF -> float32 checkpoint)"):
            path = prepare_model(name, settings.models_dir, force=force)
    except (ModelNotPreparedError, ValueError) as exc:
        _fail(str(exc))
        return
    console.print(f"{name}: prepared at {path}")


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="ragline")


if __name__ == "__main__":  # pragma: no cover
    main()
