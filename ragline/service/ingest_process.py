"""Ingestion in a process of its own, wholly at ``ingest.nice``: how a server runs jobs.

In a thread of the serving process a job shared the server's embedder and interpreter
with the queries, and its nice value reached only the threads it made: the model's own
worker threads ran at the server's priority (hybrid p99 4.8x idle during such a job,
against 1.8x beside a ``ragline ingest`` in another process; ``bench/scale.py``). Here
every thread of the job (parse workers, embedding, index writers) runs at the lower
priority, so the kernel gives the cores to queries first; and a file that crashes or
exhausts the process costs the job a retry, never the server.

The process starts with the first job and serves the later ones (models stay loaded);
progress comes back as messages, which the caller's sink records. It exits when its
parent does.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragline.ingest.pipeline import FileOutcome, IngestReport, ProgressSink
from ragline.ingest.priority import lower_thread_priority
from ragline.settings import Settings

if TYPE_CHECKING:
    from ragline.service.components import Components

# Called in the ingestion process with its components before its first run: where a test
# harness swaps a model (it must be a module-level function: it is pickled).
PrepareIngest = Callable[["Components"], None]

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # a stop waits this long for the process to leave by itself
PARENT_CHECK_S = 1.0


class IngestProcessDied(RuntimeError):
    """The ingestion process ended in the middle of a run (killed, crashed, out of
    memory); what it committed stays, the rest of the run did not happen."""


@dataclass(slots=True)
class IngestRequest:
    name: str
    paths: list[str]
    force: bool = False
    roots: list[str] | None = None
    sources: dict[str, str] = field(default_factory=dict)


class IngestProcess:
    """One ingestion process, started on first use and used by one caller at a time;
    ``ingest`` has ``CollectionService.ingest``'s meaning."""

    def __init__(self, settings: Settings, prepare: PrepareIngest | None = None) -> None:
        self.settings = settings
        self.prepare = prepare
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def ingest(
        self,
        name: str,
        paths: Sequence[str | Path],
        *,
        force: bool = False,
        progress: ProgressSink | None = None,
        roots: Sequence[str] | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> IngestReport:
        request = IngestRequest(
            name,
            [str(p) for p in paths],
            force,
            list(roots) if roots is not None else None,
            dict(sources or {}),
        )
        with self._lock:
            conn = self._started()
            ended = False
            try:
                self._talk(conn.send, request)
                while True:
                    kind, *payload = self._talk(conn.recv)
                    if kind == "done":
                        ended = True
                        report: IngestReport = payload[0]
                        return report
                    if kind == "error":
                        ended = True
                        raise payload[0]  # the run's own error: the process goes on
                    if progress is not None:
                        _relay(progress, kind, payload)
            finally:
                if not ended:  # left mid-run (the sink failed): the next run must not
                    self._reap()  # read this one's messages

    def _talk(self, call: Callable[..., Any], *args: Any) -> Any:
        """A send or receive on the pipe; a broken pipe means the process is gone."""
        try:
            return call(*args)
        except (EOFError, OSError) as exc:
            code = self._reap()
            raise IngestProcessDied(
                f"the ingestion process ended mid-run (exit code {code})"
            ) from exc

    def close(self) -> None:
        """Stop the process (a run in it stops where it is: every index stays
        consistent, as after any crash)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None:
            return
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
        process.join(STOP_GRACE_S)
        if process.is_alive():
            process.kill()
            process.join()

    def _started(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._conn is not None:
            return self._conn
        self._reap()
        context = multiprocessing.get_context("spawn")  # torch and threads: never fork
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_serve,
            args=(child_end, self.settings, os.getpid(), self.prepare),
            name="ragline-ingest",
        )
        process.start()
        child_end.close()  # the parent's copy: the child's exit must read as EOF here
        self._process, self._conn = process, parent_end
        log.info("ingestion process %d started (nice %d)", process.pid, self.settings.ingest.nice)
        return parent_end

    def _reap(self) -> int | None:
        """Forget the process, killing it if it still runs (it ended, or is abandoned
        mid-run); its exit code."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        process.kill()  # nothing if it has ended
        process.join()
        return process.exitcode


def _relay(progress: ProgressSink, kind: str, payload: list[Any]) -> None:
    if kind == "start":
        progress.start(payload[0])
    elif kind == "file":
        progress.file_done(payload[0])
    elif kind == "embedded":
        progress.embedded(payload[0], payload[1])


class _Messages:
    """The child's progress sink: each event goes to the parent as it happens."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def start(self, total_files: int) -> None:
        self.conn.send(("start", total_files))

    def file_done(self, outcome: FileOutcome) -> None:
        self.conn.send(("file", outcome))

    def embedded(self, n_chunks: int, seconds: float) -> None:
        self.conn.send(("embedded", n_chunks, seconds))


def _serve(
    conn: Connection, settings: Settings, parent: int, prepare: PrepareIngest | None
) -> None:
    """The child: runs each request it gets until told to stop or its parent is gone."""
    lower_thread_priority(settings.ingest.nice)  # first: every thread made later inherits it
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s ingest[%(process)d] %(message)s"
    )
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    from ragline.retrieve.cache import make_cache
    from ragline.service.collections import CollectionService
    from ragline.service.components import Components

    # Its own cache handle only to drop stale entries eagerly where they are shared
    # (Redis); results are keyed by the collection's generation in any case.
    service = CollectionService(Components(settings), make_cache(settings.cache))
    if prepare is not None:
        prepare(service.components)
    messages = _Messages(conn)
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        try:
            report = service.ingest(
                request.name,
                request.paths,
                force=request.force,
                progress=messages,
                roots=request.roots,
                sources=request.sources,
            )
            conn.send(("done", report))
        except Exception as exc:  # the caller's run fails with it; this process goes on
            log.exception("ingestion into %r failed", request.name)
            conn.send(("error", _portable(exc)))
        _return_freed_memory()


def _return_freed_memory() -> None:
    """Between jobs: hand the heap's free pages back to the system. A job's checkpoint
    is written from a copy of the index in memory (1.5 GB per million vectors), and glibc
    keeps large freed blocks for reuse; this process lives on, idle, until the next job."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _portable(exc: Exception) -> Exception:
    """The exception itself where it survives pickling both ways, else its type and text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _exit_with_parent(parent: int) -> None:
    """A server killed outright cannot stop this process: it leaves when it sees that."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)
