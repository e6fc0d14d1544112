"""Rich progress bars and the end-of-batch summary for ``ragline ingest``."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ragline.ingest.pipeline import FileOutcome, IngestReport, Status
from ragline.ingest.types import SMALL_CHUNK_TOKENS, ChunkSizeStats


class RichIngestProgress:
    """Two bars: files done (of all found) and chunks embedded, with embeddings/s."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.files: TaskID | None = None
        self.chunks: TaskID | None = None
        self.embedded_total = 0
        self.embed_seconds = 0.0

    def __enter__(self) -> RichIngestProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def start(self, total_files: int) -> None:
        self.files = self.progress.add_task("files", total=total_files, rate="")
        self.chunks = self.progress.add_task("chunks embedded", total=None, rate="")

    def file_done(self, outcome: FileOutcome) -> None:
        assert self.files is not None
        self.progress.advance(self.files)
        if outcome.status == Status.FAILED:
            self.progress.console.print(
                f"[red]✗[/] {outcome.source}: {outcome.detail}", highlight=False
            )

    def embedded(self, n_chunks: int, seconds: float) -> None:
        assert self.chunks is not None
        self.embedded_total += n_chunks
        self.embed_seconds += seconds
        rate = self.embedded_total / self.embed_seconds if self.embed_seconds else 0.0
        self.progress.update(self.chunks, completed=self.embedded_total, rate=f"{rate:.1f} emb/s")


def render_report(console: Console, report: IngestReport) -> None:
    summary = Table(title=f"ingest into '{report.collection}'", show_header=True)
    summary.add_column("status")
    summary.add_column("files", justify="right")
    summary.add_column("chunks", justify="right")
    for status in Status:
        outcomes = [o for o in report.outcomes if o.status == status]
        if outcomes:
            summary.add_row(status.value, str(len(outcomes)), str(sum(o.chunks for o in outcomes)))
    console.print(summary)
    embed_rate = report.chunks_embedded / report.embed_seconds if report.embed_seconds else 0.0
    console.print(
        f"{len(report.outcomes)} files in {report.seconds:.1f}s ({report.executor} executor) · "
        f"{report.chunks_embedded} chunks embedded at {embed_rate:.1f}/s"
    )
    stats = report.chunk_stats
    if stats.chunks:
        median, small = chunk_size_cells(stats)
        console.print(
            f"chunk size: median {median} tokens, {small} under {SMALL_CHUNK_TOKENS} tokens · "
            f"{report.boilerplate_dropped} boilerplate elements left out, "
            f"{report.small_merged} small chunks merged"
        )
    if report.failures:
        errors = Table(title="files with errors", show_header=True)
        errors.add_column("file", overflow="fold")
        errors.add_column("reason", overflow="fold")
        for outcome in report.failures:
            errors.add_row(outcome.source, outcome.detail)
        console.print(errors)


def chunk_size_cells(stats: ChunkSizeStats) -> tuple[str, str]:
    """(median tokens, share of small chunks) as table cells; '-' without chunks."""
    if stats.median_tokens is None or stats.share_small is None:
        return "-", "-"
    return f"{stats.median_tokens:.0f}", f"{stats.share_small:.0%}"
