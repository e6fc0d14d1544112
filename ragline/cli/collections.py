"""``ragline ingest``, ``ragline collections`` and ``ragline delete``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ragline.cli.app import CollectionOpt, app, collection_name, console, err_console, fail
from ragline.cli.app import settings as load


class Executor(StrEnum):
    local = "local"
    ray = "ray"


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders to ingest")],
    collection: CollectionOpt = None,
    force: Annotated[bool, typer.Option(help="re-parse files even if unchanged")] = False,
    workers: Annotated[int | None, typer.Option(help="parsing processes")] = None,
    executor: Annotated[
        Executor | None,
        typer.Option(help="local: this machine; ray: a Ray cluster (default: ingest.executor)"),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="with --executor ray: auto or HOST:PORT joins that cluster; default "
            "(ray.address unset): start a local Ray instance"
        ),
    ] = None,
) -> None:
    """Parse, chunk, embed and index documents into a collection."""
    from rich.markup import escape

    from ragline.cli.progress import RichIngestProgress, render_report
    from ragline.ingest.collection import CollectionError
    from ragline.ingest.executor import ExecutorUnavailable
    from ragline.service.collections import CollectionService
    from ragline.service.components import Components

    settings = load()
    if workers is not None:
        settings.parsing.workers = workers
    if executor is not None:
        settings.ingest.executor = executor.value
    if ray_address is not None:
        settings.ray.address = ray_address
    service = CollectionService(Components(settings))
    try:
        with RichIngestProgress(console) as progress:
            report = service.ingest(
                collection_name(settings, collection), paths, force=force, progress=progress
            )
    except (CollectionError, FileNotFoundError, ExecutorUnavailable) as exc:
        fail(escape(str(exc)))  # file names and "ragline[ray]" are not markup
    render_report(console, report)


@app.command("collections")
def list_collections() -> None:
    """List collections with their document and chunk counts."""
    from ragline.cli.progress import chunk_size_cells
    from ragline.service.collections import CollectionService
    from ragline.service.components import Components

    table = Table(
        "collection",
        "documents",
        "chunks",
        "median tokens",
        "chunks < 32 tok",
        "index",
        "generation",
        "size",
        "model",
    )
    runtimes = []
    for info in CollectionService(Components(load())).infos():
        table.add_row(
            info.name,
            str(info.documents),
            str(info.chunks),
            *chunk_size_cells(info.chunk_sizes),
            info.index_kind,
            str(info.generation),
            f"{info.size_bytes / 2**20:.1f} MiB",
            info.embedding_model or "-",
        )
        if info.embedding_runtimes:
            runtimes.append(f"{info.name}: {', '.join(info.embedding_runtimes)}")
    if runtimes:
        # Under the table: a column would squeeze the others out of an 80-column terminal.
        table.caption = "vectors made with " + "; ".join(runtimes)
    console.print(table)


@app.command()
def delete(
    sources: Annotated[list[Path] | None, typer.Argument(help="documents to remove")] = None,
    collection: CollectionOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="delete the whole collection")] = False,
) -> None:
    """Delete documents from a collection, or the whole collection with --all."""
    from ragline.ingest.collection import CollectionError
    from ragline.service.collections import CollectionService
    from ragline.service.components import Components

    settings = load()
    name = collection_name(settings, collection)
    service = CollectionService(Components(settings))
    if not all_ and not sources:
        fail("name documents to delete, or pass --all")
    wanted = [str(Path(s).resolve()) for s in sources or []]
    try:
        if all_:
            service.drop(name)
            console.print(f"deleted collection [bold]{name}[/]")
            return
        found = service.delete_documents(name, wanted)
    except CollectionError as exc:
        fail(str(exc))
    missing = set(wanted) - set(found)
    for source in found:
        console.print(f"deleted {source}")
    for source in sorted(missing):
        err_console.print(f"[yellow]not in collection:[/] {source}")
    if missing:
        raise typer.Exit(1)


@app.command("import")
def import_embeddings(
    file: Annotated[
        Path, typer.Argument(help="Parquet: id, text, embedding [, source, title, metadata]")
    ],
    collection: CollectionOpt = None,
    model: Annotated[
        str | None, typer.Option(help="the model that made the vectors (default: embedding.model)")
    ] = None,
) -> None:
    """Import chunks with their own embeddings (no embedding model run); bad rows are
    reported by number and the rest go in; importing an id again replaces it."""
    from ragline.ingest.collection import CollectionError
    from ragline.ingest.importer import ImportFileError
    from ragline.service.collections import CollectionService, ImportReport
    from ragline.service.components import Components

    settings = load()
    name = collection_name(settings, collection)
    service = CollectionService(Components(settings))

    def progress(report: ImportReport) -> None:
        console.print(
            f"[dim]{report.rows} rows read, {report.added + report.replaced} written, "
            f"{len(report.errors)} bad[/]",
            highlight=False,
        )

    try:
        report = service.import_parquet(name, file, model=model, on_batch=progress)
    except (CollectionError, ImportFileError, FileNotFoundError) as exc:
        fail(str(exc))
    console.print(
        f"imported into '{name}': {report.added} added, {report.replaced} replaced, "
        f"{report.unchanged} unchanged, {len(report.errors)} bad rows of {report.rows} "
        f"in {report.seconds:.1f}s"
    )
    if report.errors:
        table = Table("row", "reason", title="rows not imported")
        for error in report.errors[:50]:
            table.add_row(str(error.row), error.reason)
        console.print(table)
        if len(report.errors) > 50:
            err_console.print(f"... and {len(report.errors) - 50} more")
