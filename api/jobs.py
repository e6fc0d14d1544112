"""Background ingestion jobs: the worker task that claims, runs and finishes them, and
takes back the jobs of a runner that died (records: ``api.jobrecord``; where they are
kept, durably: ``api.jobstore``). Each job slot runs its jobs in an ingestion process of
its own at ``ingest.nice`` (``ragline.service.ingest_process``), so queries keep the
cores first and a file that kills that process costs the job a retry, not the server.

A running job's record names its runner (host, pid and start time) and carries a
heartbeat. A job whose runner is gone (a process of this host no longer running, or no
heartbeat for ``LEASE_S``) is queued again and resumes where it stopped: the files it
finished are skipped, and a file written but not yet recorded is found unchanged by its
hash, so each is ingested once; the same when only the job's ingestion process died.
After ``MAX_ATTEMPTS`` interrupted runs it fails with the reason. Uploaded files are
removed when their job ends, whichever way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ragline.api.jobrecord import JobRecord, JobStatus
from ragline.api.jobstore import JobQueueUnavailable, JobStore, make_job_store
from ragline.api.metrics import Metrics
from ragline.api.watchdog import Proc, proc, running
from ragline.ingest.pipeline import FileOutcome, Status
from ragline.service.collections import CollectionService
from ragline.service.ingest_process import IngestProcess, IngestProcessDied, PrepareIngest
from ragline.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 1.0  # how often an idle worker looks for jobs queued by other replicas
HEARTBEAT_S = 10.0
LEASE_S = 60.0  # a job of another host without a heartbeat this long is taken back
RECOVER_S = 5.0  # how often running jobs are checked for a dead runner
MAX_ATTEMPTS = 3

__all__ = ["JobQueueUnavailable", "JobRecord", "JobRunner", "make_store"]


def runner_id() -> str:
    """This process, as a job's owner: host, pid and start time (pids are reused)."""
    me = proc(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}:{me.start if me else 0}"


def runner_gone(owner: str | None, heartbeat_at: float | None, now: float) -> bool:
    """The runner that claimed a job is no longer running it."""
    host, _, rest = (owner or "").partition(":")
    pid, _, start = rest.partition(":")
    if host == socket.gethostname() and pid.isdigit() and start.isdigit():
        return not running(Proc(int(pid), int(start)))
    return heartbeat_at is None or now - heartbeat_at > LEASE_S


def make_store(settings: Settings) -> JobStore:
    return make_job_store(settings.cache.redis_url, settings.storage.data_dir)


class JobProgress:
    """The pipeline's progress sink, writing into the job record as files finish."""

    def __init__(self, job: JobRecord, store: JobStore, metrics: Metrics) -> None:
        self.job = job
        self.store = store
        self.metrics = metrics
        self._lock = threading.Lock()  # the heartbeat writes from another thread

    def save(self) -> None:
        try:
            with self._lock:
                self.store.save(self.job)
        except JobQueueUnavailable as exc:  # progress is best effort; the final save retries
            log.warning("job %s progress not saved: %s", self.job.id, exc)

    def heartbeat(self) -> None:
        self.job.heartbeat_at = time.time()
        try:
            with self._lock:
                self.store.heartbeat(self.job)
        except JobQueueUnavailable as exc:
            log.warning("job %s heartbeat not saved: %s", self.job.id, exc)

    def finish(self) -> None:
        """The final record (JobQueueUnavailable when it cannot be written)."""
        with self._lock:
            self.store.finish(self.job)

    def start(self, total_files: int) -> None:
        self.job.files_total = len(self.job.done) + total_files  # resumed: some were done
        self.save()

    def file_done(self, outcome: FileOutcome) -> None:
        job = self.job
        job.done.append(outcome.source)
        job.files_done = len(job.done)
        job.outcomes[outcome.status.value] = job.outcomes.get(outcome.status.value, 0) + 1
        if outcome.status == Status.FAILED:
            job.errors.append({"file": Path(outcome.source).name, "error": outcome.detail})
        self.metrics.ingested_files.labels(outcome.status.value).inc()
        self.save()

    def embedded(self, n_chunks: int, seconds: float) -> None:
        self.job.chunks_embedded += n_chunks


class JobRunner:
    """``slots`` worker tasks: each runs one job at a time in its own ingestion process
    (parsing uses worker processes of that one), followed from a thread, so the event
    loop keeps serving answers meanwhile, and a job stuck on one slow file holds up its
    own slot only."""

    def __init__(
        self,
        store: JobStore,
        collections: CollectionService,
        metrics: Metrics,
        slots: int = 1,
        prepare_ingest: PrepareIngest | None = None,
    ) -> None:
        self.store = store
        self.collections = collections
        self.metrics = metrics
        self.slots = slots
        self.owner = runner_id()
        self.running: dict[str, JobRecord] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._job_threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="ingest-job")
        self._processes = [
            IngestProcess(collections.settings, prepare_ingest) for _ in range(slots)
        ]

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run_forever(slot), name=f"ingest-jobs-{slot}")
            for slot in range(self.slots)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._job_threads.shutdown(wait=False, cancel_futures=True)
        # A job running now stays "running" under this runner and is taken back once the
        # runner is gone, like any interrupted run.
        await asyncio.gather(*(asyncio.to_thread(p.close) for p in self._processes))

    def submit(self, job: JobRecord) -> None:
        self.store.submit(job)
        self._wake.set()

    def progress(self) -> tuple[int, int]:
        jobs = list(self.running.values())
        return sum(j.files_done for j in jobs), sum(j.files_total for j in jobs)

    async def _run_forever(self, slot: int) -> None:
        recover_at = 0.0
        while True:
            if slot == 0 and time.monotonic() >= recover_at:
                with contextlib.suppress(JobQueueUnavailable):
                    await asyncio.to_thread(self.recover)
                recover_at = time.monotonic() + RECOVER_S
            try:
                job = await asyncio.to_thread(self.store.claim, self.owner)
            except JobQueueUnavailable:
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                continue
            self.running[job.id] = job
            try:
                await self._run(job, self._processes[slot])
            finally:
                del self.running[job.id]

    async def _run(self, job: JobRecord, process: IngestProcess) -> None:
        """Run the job in the slot's process, followed from a thread, beating its heart
        meanwhile."""
        progress = JobProgress(job, self.store, self.metrics)
        loop = asyncio.get_running_loop()
        work = asyncio.ensure_future(
            loop.run_in_executor(self._job_threads, self._execute, job, progress, process)
        )
        while not work.done():
            await asyncio.wait({work}, timeout=HEARTBEAT_S)
            if not work.done():
                await asyncio.to_thread(progress.heartbeat)
        await work

    def recover(self) -> list[JobRecord]:
        """Take back the running jobs whose runner is gone: queued again, or failed once
        they were interrupted MAX_ATTEMPTS times. Returns those this replica took."""
        taken = []
        now = time.time()
        for job in self.store.running():
            if job.owner == self.owner or not runner_gone(job.owner, job.heartbeat_at, now):
                continue
            if record := self._take_back(job, "the server stopped while it ran"):
                taken.append(record)
        return taken

    def _take_back(self, job: JobRecord, what: str) -> JobRecord | None:
        """An interrupted run of the job: queued again to resume, or failed after
        MAX_ATTEMPTS; the record written, or None if another replica took it back first.
        ``job`` itself is left as it was: a write retried after a store outage counts the
        run once."""
        attempts = job.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            status: JobStatus = "failed"
            message = f"interrupted {attempts} times: {what} (a file may crash or exhaust it)"
        else:
            status, message = "queued", f"resumed after {attempts} interruption(s)"
        taken = dataclasses.replace(
            job,
            owner=None,
            attempts=attempts,
            status=status,
            message=message,
            finished_at=time.time() if status == "failed" else None,
        )
        if not self.store.release(taken, job.owner):
            return None
        log.warning("job %s interrupted (%s): %s", job.id, what, message)
        if status == "failed":
            _remove_uploads(taken)
        else:
            self._wake.set()
        return taken

    def _execute(self, job: JobRecord, progress: JobProgress, process: IngestProcess) -> None:
        job.started_at = job.started_at or time.time()
        progress.save()
        try:
            report = process.ingest(
                job.collection,
                job.remaining(),
                force=job.force,
                progress=progress,
                roots=job.roots,
                sources=job.sources,
            )
            job.status, job.executor = "succeeded", report.executor
        except IngestProcessDied as exc:
            what = f"its ingestion process died ({exc})"
            _retrying(lambda: self._take_back(job, what))
            return
        except Exception as exc:  # a job failure is reported in the job, never crashes the app
            log.exception("ingestion job %s failed", job.id)
            job.status, job.message = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self.collections.invalidate(job.collection)
        job.finished_at = time.time()
        if not _retrying(progress.finish):
            # Still "running" under this runner: once it is gone, the job is taken back and
            # found done (every file unchanged); its uploads are needed until then.
            log.error("job %s finished (%s) but its record could not be saved", job.id, job.status)
            return
        _remove_uploads(job)


def _retrying(write: Callable[[], object], attempts: int = 5) -> bool:
    """A record write that outlasts a short outage of the job store; False if it did not."""
    for attempt in range(attempts):
        try:
            write()
            return True
        except JobQueueUnavailable:
            time.sleep(0.5 * (attempt + 1))
    return False


def _remove_uploads(job: JobRecord) -> None:
    if job.staging:
        shutil.rmtree(Path(job.staging), ignore_errors=True)
