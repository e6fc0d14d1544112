"""Parse files across worker processes, each file with a time limit.

pebble's pool kills a worker whose file overruns its timeout or crashes the parser,
which a plain ``ProcessPoolExecutor`` cannot do; the batch goes on either way.

Small files go several to a task (``parsing.batch_bytes``): one task per file cost more
in hand-offs and worker restarts than parsing a short text. A task of several files that
times out or kills its worker is retried a file at a time, so a bad file still fails
alone, with its own reason. A file whose worker dies is parsed again once more (a worker
killed from outside, by the OOM killer say, is no fault of the file); the second death is
its error. A worker whose peak memory passed ``parsing.recycle_worker_mb`` after a task
is replaced by a fresh one: the heap a big file grew is seldom returned to the system.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from pebble import ProcessExpired, ProcessPool

from ragline.ingest.parse import file_sha256, parse_file, peak_rss_bytes
from ragline.ingest.types import ParsedDocument
from ragline.settings import ParsingSettings

log = logging.getLogger(__name__)

_MAX_TASKS_PER_WORKER = 100  # recycle workers: some parsers leak memory
_TASKS_PER_WORKER = 4  # at least this many tasks per worker: batches must not starve one
_MAX_BATCH_FILES = 64
_DEATHS_PER_FILE = 2  # a file is parsed again after its worker died once, not twice
_POOL_CHECK_S = 1.0  # how often a wait for parse results checks that the pool still runs
_POOL_STARTS = 3  # a pool broken by a worker that died idle is started again, this often
_BROKEN = "the parse processes kept dying before they took a file (pool broken 3 times)"
_recycle = False  # set in a worker by a task that left it big: it takes no further task


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
    _stop_when_recycled()


def _stop_when_recycled() -> None:
    """pebble's worker loop takes tasks until ``max_tasks``; this one also stops after a
    task that set ``_recycle``, and pebble starts a fresh worker as it does at max_tasks.
    (A pebble without that loop function keeps max_tasks recycling only.)"""
    from pebble.pool import process as pebble_process

    next_tasks = getattr(pebble_process, "worker_get_next_task", None)
    if next_tasks is None:
        return

    def until_recycled(channel: Any, max_tasks: int) -> Iterator[Any]:
        for task in next_tasks(channel, max_tasks):
            yield task
            if _recycle:
                return

    pebble_process.worker_get_next_task = until_recycled


def parse_batch(
    paths: Sequence[Path], settings: ParsingSettings, roots: Sequence[str] | None
) -> list[ParsedDocument]:
    """One worker task: its files parsed one after another, each isolated by parse_file."""
    global _recycle
    documents = [parse_file(path, settings, roots) for path in paths]
    _recycle = _recycle or peak_rss_bytes() > settings.recycle_worker_mb * 2**20
    return documents


def batches(paths: Sequence[Path], settings: ParsingSettings) -> list[list[Path]]:
    """Consecutive small files grouped up to ``batch_bytes`` (and enough tasks to keep every
    worker busy); a larger or unreadable file goes alone."""
    per_batch = min(
        _MAX_BATCH_FILES, math.ceil(len(paths) / (_TASKS_PER_WORKER * settings.workers))
    )
    groups: list[list[Path]] = []
    current: list[Path] = []
    current_bytes = 0
    for path in paths:
        try:
            size = os.stat(path).st_size
        except OSError:
            size = settings.batch_bytes + 1  # parse_file reports why, alone
        if size > settings.batch_bytes // 2 or per_batch <= 1:
            groups.append([path])
            continue
        if current and (len(current) >= per_batch or current_bytes + size > settings.batch_bytes):
            groups.append(current)
            current, current_bytes = [], 0
        current.append(path)
        current_bytes += size
    if current:
        groups.append(current)
    return groups


def parse_files(
    paths: Sequence[Path], settings: ParsingSettings, roots: Sequence[str] | None = None
) -> Iterator[ParsedDocument]:
    """Yield parsed documents as they finish (not in input order); with ``roots``, a file
    is read only if it lies under one of them when the worker opens it."""
    groups = batches(paths, settings)
    deaths: dict[Path, int] = {}
    for attempt in range(_POOL_STARTS):
        broken: list[list[Path]] = []
        yield from _parse_in_pool(groups, settings, roots, deaths, broken)
        groups = broken
        if not groups:
            return
        log.warning("parse pool broke (attempt %d): %d task(s) again", attempt + 1, len(groups))
    for group in groups:
        for path in group:
            yield failed_document(path, _BROKEN, confined=roots is not None)


def _parse_in_pool(
    groups: list[list[Path]],
    settings: ParsingSettings,
    roots: Sequence[str] | None,
    deaths: dict[Path, int],
    broken: list[list[Path]],
) -> Iterator[ParsedDocument]:
    """One pool's run over ``groups``; the groups it could not run because the pool broke
    are put in ``broken``. pebble breaks the whole pool when a worker dies holding no
    task (killed while it starts, or between tasks): no file's fault."""
    if not groups:
        return
    workers = min(settings.workers, sum(len(g) for g in groups))
    # spawn, not fork: the parent may already hold torch/OpenMP threads.
    context = multiprocessing.get_context("spawn")
    with ProcessPool(
        max_workers=workers,
        max_tasks=_MAX_TASKS_PER_WORKER,
        initializer=_init_worker,
        initargs=(settings.worker_memory_mb,),
        context=context,
    ) as pool:

        def schedule(group: list[Path]) -> Future[list[ParsedDocument]]:
            return pool.schedule(
                parse_batch, args=(group, settings, roots), timeout=settings.file_timeout_s
            )

        pending = {schedule(group): group for group in groups}
        while pending:
            done, _ = wait(pending, timeout=_POOL_CHECK_S, return_when=FIRST_COMPLETED)
            if not done and not pool.active:
                # A broken pool aborts the tasks it had handed out, but one still in its
                # queue is never completed (pebble): it would be waited on forever.
                for future, group in pending.items():
                    future.cancel()
                    broken.append(group)
                return
            for future in done:
                group = pending.pop(future)
                try:
                    yield from future.result()
                except BrokenProcessPool:
                    broken.append(group)
                except Exception as exc:
                    if isinstance(exc, ProcessExpired):
                        for path in group:
                            deaths[path] = deaths.get(path, 0) + 1
                    if len(group) > 1:  # find the file that did it: one task each
                        pending.update((schedule([path]), [path]) for path in group)
                    elif 0 < deaths.get(group[0], 0) < _DEATHS_PER_FILE:
                        pending[schedule(group)] = group
                    else:
                        yield failed_document(
                            group[0], _reason(exc, settings), confined=roots is not None
                        )


def _reason(exc: Exception, settings: ParsingSettings) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {settings.file_timeout_s:.0f}s while parsing"
    if isinstance(exc, ProcessExpired):
        return died_reason(settings, f"exit code {exc.exitcode}")
    return f"{type(exc).__name__}: {exc}"  # a pool-level failure for this task only


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
