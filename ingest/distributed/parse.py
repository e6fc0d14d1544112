"""Parse files as Ray tasks, each with the local executor's time and memory limits.

A task runs one file in a pooled worker process under the same heap cap as a local
parse worker. Ray retries a task whose worker or node dies (``max_retries``); a file
that kills its worker every time, or overruns ``parsing.file_timeout_s`` (its worker
is then killed), becomes an error row like any other failed file: never a failed job.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import ray
from ray.exceptions import OutOfMemoryError, RayError, WorkerCrashedError

from ragline.ingest.parallel import cap_heap, died_reason, failed_document
from ragline.ingest.types import ParsedDocument
from ragline.settings import ParsingSettings

PARSE_RETRIES = 3  # a worker or node lost mid-file: the file is parsed again elsewhere
_TASKS_PER_WORKER = 100  # recycle workers, as the local pool does: some parsers leak
_POLL_S = 1.0  # how often running files are checked against their time limit


@ray.remote(num_cpus=1, max_retries=PARSE_RETRIES, max_calls=_TASKS_PER_WORKER)
def _parse_task(
    path: str, settings: ParsingSettings, roots: Sequence[str] | None
) -> ParsedDocument:
    from ragline.ingest.offline_nlp import use_packaged_spacy_model
    from ragline.ingest.parse import parse_file

    # Capped only while parsing: Ray may hand this worker process other work later.
    previous = cap_heap(settings.worker_memory_mb)
    try:
        use_packaged_spacy_model()
        return parse_file(path, settings, roots)
    finally:
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        resource.setrlimit(resource.RLIMIT_DATA, (previous, hard))


def parse_on_cluster(
    paths: Sequence[Path], settings: ParsingSettings, roots: Sequence[str] | None, slots: int
) -> Iterator[ParsedDocument]:
    """Yield each file's document as it finishes. At most ``slots`` files (the cluster's
    CPUs) are in flight, so that a file's time limit counts from about when it starts."""
    waiting = list(reversed(paths))
    running: dict[ray.ObjectRef, tuple[Path, float]] = {}
    confined = roots is not None
    while waiting or running:
        while waiting and len(running) < slots:
            path = waiting.pop()
            ref = _parse_task.remote(str(path), settings, None if roots is None else list(roots))
            running[ref] = (path, time.monotonic())
        ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
        for ref in ready:
            path, _ = running.pop(ref)
            yield _result(ref, path, settings, confined)
        now = time.monotonic()
        for ref, (path, started) in list(running.items()):
            if now - started > settings.file_timeout_s:
                ray.cancel(ref, force=True)  # kills the worker; a cancelled task is not retried
                del running[ref]
                error = f"timed out after {settings.file_timeout_s:.0f}s while parsing"
                yield failed_document(path, error, confined)


def _result(
    ref: ray.ObjectRef, path: Path, settings: ParsingSettings, confined: bool
) -> ParsedDocument:
    try:
        document: ParsedDocument = ray.get(ref)
        return document
    except OutOfMemoryError:
        error = died_reason(settings, "killed by Ray's memory monitor")
    except WorkerCrashedError:
        error = died_reason(settings, f"it died {PARSE_RETRIES + 1} times on this file")
    except RayError as exc:  # a failure for this file only
        first_line = (str(exc).strip().splitlines() or [""])[0]
        error = f"{type(exc).__name__}: {first_line[:300]}"
    return failed_document(path, error, confined)
