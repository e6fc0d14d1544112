"""Parse files across worker processes, each file with a time limit.

pebble's pool kills a worker whose file overruns its timeout or crashes the parser,
which a plain ``ProcessPoolExecutor`` cannot do; the batch goes on either way.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path

from pebble import ProcessExpired, ProcessPool

from ragline.ingest.parse import file_sha256, parse_file
from ragline.ingest.types import ParsedDocument
from ragline.settings import ParsingSettings

_MAX_TASKS_PER_WORKER = 100  # recycle workers: some parsers leak memory


def cap_heap(memory_mb: int) -> int:
    """Limit this process's heap; returns the soft limit it had.

    The heap, not the address space: mapped libraries (torch, onnxruntime) take GBs of
    address space they never touch. A file that needs more raises MemoryError (its
    reason) or kills its worker (the pool starts another); the others go on."""
    import resource

    previous, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return previous


def _init_worker(memory_mb: int) -> None:
    from ragline.ingest.offline_nlp import use_packaged_spacy_model

    cap_heap(memory_mb)
    use_packaged_spacy_model()


def parse_files(
    paths: Sequence[Path], settings: ParsingSettings, roots: Sequence[str] | None = None
) -> Iterator[ParsedDocument]:
    """Yield parsed documents as they finish (not in input order); with ``roots``, a file
    is read only if it lies under one of them when the worker opens it."""
    if not paths:
        return
    workers = min(settings.workers, len(paths))
    # spawn, not fork: the parent may already hold torch/OpenMP threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPool(
        max_workers=workers,
        max_tasks=_MAX_TASKS_PER_WORKER,
        initializer=_init_worker,
        initargs=(settings.worker_memory_mb,),
        context=context,
    ) as pool:
        pending: dict[Future[ParsedDocument], Path] = {
            pool.schedule(
                parse_file, args=(path, settings, roots), timeout=settings.file_timeout_s
            ): path
            for path in paths
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                path = pending.pop(future)
                yield _result(future, path, settings, confined=roots is not None)


def _result(
    future: Future[ParsedDocument], path: Path, settings: ParsingSettings, confined: bool
) -> ParsedDocument:
    try:
        return future.result()
    except TimeoutError:
        error = f"timed out after {settings.file_timeout_s:.0f}s while parsing"
    except ProcessExpired as exc:
        error = died_reason(settings, f"exit code {exc.exitcode}")
    except Exception as exc:  # a pool-level failure for this file only
        error = f"{type(exc).__name__}: {exc}"
    return failed_document(path, error, confined)


def died_reason(settings: ParsingSettings, how: str) -> str:
    return (
        f"parser process died ({how}); out of memory? "
        f"(parsing.worker_memory_mb: {settings.worker_memory_mb})"
    )


def failed_document(path: Path, error: str, confined: bool) -> ParsedDocument:
    if confined:  # only the worker's confined open may read it
        return ParsedDocument(
            source=str(path), content_hash="", size_bytes=0, file_type="", error=error
        )
    resolved = path.resolve()
    try:
        size, digest = resolved.stat().st_size, file_sha256(resolved)
    except OSError:
        size, digest = 0, ""
    return ParsedDocument(
        source=str(resolved), content_hash=digest, size_bytes=size, file_type="", error=error
    )
