"""Background ingestion jobs: records, a queue, and the worker task that runs them.

Without Redis the queue and records live in this process. With ``cache.redis_url`` set,
job records are Redis hashes (``ragline:job:<id>``) and pending ids a Redis list, so any
replica can report a job and the first free worker takes it (the files a job names must
then be on storage every replica sees, i.e. a shared ``storage.data_dir``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ragline.api.metrics import Metrics
from ragline.api.schemas import FileError, JobOut
from ragline.ingest.pipeline import FileOutcome, Status
from ragline.service.collections import CollectionService
from ragline.settings import Settings

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

log = logging.getLogger(__name__)

JOB_TTL_S = 7 * 24 * 3600
POLL_S = 1.0  # how often an idle worker looks for jobs queued by other replicas


JobStatus = Literal["queued", "running", "succeeded", "failed"]


class JobQueueUnavailable(Exception):
    """The job store (Redis) cannot be reached."""


@dataclass(slots=True)
class JobRecord:
    collection: str
    paths: list[str]
    force: bool = False
    roots: list[str] | None = None  # files are read only if, once opened, they lie under these
    id: str = field(default_factory=lambda: f"job-{uuid.uuid4().hex[:16]}")
    status: JobStatus = "queued"
    files_total: int = 0
    files_done: int = 0
    chunks_embedded: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    message: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    def out(self) -> JobOut:
        return JobOut(
            id=self.id,
            collection=self.collection,
            status=self.status,
            files_total=self.files_total,
            files_done=self.files_done,
            chunks_embedded=self.chunks_embedded,
            outcomes=dict(self.outcomes),
            errors=[FileError(**e) for e in self.errors],
            message=self.message,
            created_at=self.created_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
        )


class JobStore(Protocol):
    def submit(self, job: JobRecord) -> None: ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def save(self, job: JobRecord) -> None: ...

    def next_job(self) -> JobRecord | None: ...

    def pending(self) -> int: ...


class MemoryJobStore:
    def __init__(self) -> None:
        self._jobs: dict[str, JobRecord] = {}
        self._pending: deque[str] = deque()
        self._lock = threading.Lock()

    def submit(self, job: JobRecord) -> None:
        with self._lock:
            self._jobs[job.id] = job
            self._pending.append(job.id)

    def get(self, job_id: str) -> JobRecord | None:
        return self._jobs.get(job_id)

    def save(self, job: JobRecord) -> None:
        pass  # the record is the one object every reader sees

    def next_job(self) -> JobRecord | None:
        with self._lock:
            return self._jobs[self._pending.popleft()] if self._pending else None

    def pending(self) -> int:
        return len(self._pending)


class RedisJobStore:
    PENDING = "ragline:jobs:pending"

    def __init__(self, url: str) -> None:
        import redis

        self._errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)

    @staticmethod
    def _key(job_id: str) -> str:
        return f"ragline:job:{job_id}"

    def _call(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except self._errors as exc:
            raise JobQueueUnavailable(f"job queue unavailable (Redis: {exc})") from exc

    def submit(self, job: JobRecord) -> None:
        def push() -> None:
            pipe = self.client.pipeline()
            pipe.hset(self._key(job.id), mapping=_encode(job))
            pipe.expire(self._key(job.id), JOB_TTL_S)
            pipe.rpush(self.PENDING, job.id)
            pipe.execute()

        self._call(push)

    def get(self, job_id: str) -> JobRecord | None:
        raw = self._call(lambda: self.client.hgetall(self._key(job_id)))
        return _decode(raw) if raw else None

    def save(self, job: JobRecord) -> None:
        self._call(lambda: self.client.hset(self._key(job.id), mapping=_encode(job)))

    def next_job(self) -> JobRecord | None:
        job_id = self._call(lambda: self.client.lpop(self.PENDING))
        if job_id is None:
            return None
        return self.get(job_id.decode() if isinstance(job_id, bytes) else str(job_id))

    def pending(self) -> int:
        try:
            return int(self.client.llen(self.PENDING))
        except self._errors:
            return 0


def _encode(job: JobRecord) -> dict[FieldT, EncodableT]:
    return {key: json.dumps(value) for key, value in asdict(job).items()}


def _decode(raw: dict[bytes, bytes]) -> JobRecord:
    return JobRecord(**{k.decode(): json.loads(v) for k, v in raw.items()})


def make_job_store(settings: Settings) -> JobStore:
    url = settings.cache.redis_url
    return RedisJobStore(url) if url else MemoryJobStore()


class JobProgress:
    """The pipeline's progress sink, writing into the job record as files finish."""

    def __init__(self, job: JobRecord, store: JobStore, metrics: Metrics) -> None:
        self.job = job
        self.store = store
        self.metrics = metrics

    def save(self) -> None:
        try:
            self.store.save(self.job)
        except JobQueueUnavailable as exc:  # progress is best effort; the final save retries
            log.warning("job %s progress not saved: %s", self.job.id, exc)

    def start(self, total_files: int) -> None:
        self.job.files_total = total_files
        self.save()

    def file_done(self, outcome: FileOutcome) -> None:
        job = self.job
        job.files_done += 1
        job.outcomes[outcome.status.value] = job.outcomes.get(outcome.status.value, 0) + 1
        if outcome.status == Status.FAILED:
            job.errors.append({"file": Path(outcome.source).name, "error": outcome.detail})
        self.metrics.ingested_files.labels(outcome.status.value).inc()
        self.save()

    def embedded(self, n_chunks: int, seconds: float) -> None:
        self.job.chunks_embedded += n_chunks


class JobRunner:
    """One worker task: jobs run one at a time, each in a thread (parsing itself uses
    worker processes), so the event loop keeps serving answers meanwhile."""

    def __init__(self, store: JobStore, collections: CollectionService, metrics: Metrics) -> None:
        self.store = store
        self.collections = collections
        self.metrics = metrics
        self.current: JobRecord | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name="ingest-jobs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, job: JobRecord) -> None:
        self.store.submit(job)
        self._wake.set()

    def progress(self) -> tuple[int, int]:
        job = self.current
        return (job.files_done, job.files_total) if job else (0, 0)

    async def _run_forever(self) -> None:
        while True:
            try:
                job = await asyncio.to_thread(self.store.next_job)
            except JobQueueUnavailable:
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_S)
                continue
            self.current = job
            try:
                await asyncio.to_thread(self._execute, job)
            finally:
                self.current = None

    def _execute(self, job: JobRecord) -> None:
        job.status, job.started_at = "running", time.time()
        progress = JobProgress(job, self.store, self.metrics)
        progress.save()
        try:
            self.collections.ingest(
                job.collection, job.paths, force=job.force, progress=progress, roots=job.roots
            )
            job.status = "succeeded"
        except Exception as exc:  # a job failure is reported in the job, never crashes the app
            log.exception("ingestion job %s failed", job.id)
            job.status, job.message = "failed", f"{type(exc).__name__}: {exc}"
        job.finished_at = time.time()
        for attempt in range(5):
            try:
                self.store.save(job)
                return
            except JobQueueUnavailable:
                time.sleep(0.5 * (attempt + 1))
        log.error("job %s finished (%s) but its record could not be saved", job.id, job.status)
