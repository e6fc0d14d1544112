"""Where ingestion jobs live, durably: SQLite in the data dir, or Redis.

Without Redis the records are rows of ``<data_dir>/jobs.sqlite``; with ``cache.redis_url``
they are Redis hashes (``ragline:job:<id>``), queued ids a list, and ids being run a
second list, so any replica can report a job and the first free worker takes it (the
files a job names must then be on storage every replica sees).

Either way a job is claimed atomically (queued → running, with its owner and a
heartbeat), and a running job whose owner is gone can be taken back by exactly one
replica (``release``), to run again or to fail with the reason.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ragline.api.jobrecord import JobRecord

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

JOB_TTL_S = 7 * 24 * 3600  # finished jobs are kept this long


class JobQueueUnavailable(Exception):
    """The job store (Redis) cannot be reached."""


class JobStore(Protocol):
    def submit(self, job: JobRecord) -> None:
        """Store a new job and queue it."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def save(self, job: JobRecord) -> None:
        """Write the record's progress (a job this replica runs)."""

    def heartbeat(self, job: JobRecord) -> None:
        """Only the record's heartbeat: the runner is alive."""

    def claim(self, owner: str) -> JobRecord | None:
        """The oldest queued job, now running and owned by ``owner``; None if none."""

    def running(self) -> list[JobRecord]:
        """Every job claimed and not finished (this replica's and others')."""

    def release(self, job: JobRecord, previous_owner: str | None) -> bool:
        """Write ``job`` (queued again, or failed) in place of the running record, if
        that still belongs to ``previous_owner``: of replicas releasing the same job,
        exactly one gets True (and requeues it when its status is queued)."""

    def finish(self, job: JobRecord) -> None:
        """Write the finished record and take it off the running jobs."""

    def pending(self) -> int: ...


_KNOWN = {f.name for f in fields(JobRecord)}


def _record(raw: dict[str, Any]) -> JobRecord:
    return JobRecord(**{k: v for k, v in raw.items() if k in _KNOWN})


# -- SQLite (no Redis) -------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, created_at);
"""


class SqliteJobStore:
    """Jobs as rows of one SQLite file; every replica on this machine shares it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._conn.executescript(_SCHEMA)

    @property
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _put(self, conn: sqlite3.Connection, job: JobRecord) -> None:
        conn.execute(
            "INSERT INTO jobs(id, status, created_at, record) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET status = excluded.status, record = excluded.record",
            (job.id, job.status, job.created_at, json.dumps(asdict(job))),
        )

    def _load(self, conn: sqlite3.Connection, job_id: str) -> JobRecord | None:
        row = conn.execute("SELECT record FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _record(json.loads(row[0]))

    def submit(self, job: JobRecord) -> None:
        with self._transaction() as conn:
            self._put(conn, job)
            conn.execute(  # finished jobs expire, as Redis' do
                "DELETE FROM jobs WHERE status IN ('succeeded', 'failed') AND created_at < ?",
                (time.time() - JOB_TTL_S,),
            )

    def get(self, job_id: str) -> JobRecord | None:
        return self._load(self._conn, job_id)

    def save(self, job: JobRecord) -> None:
        with self._transaction() as conn:
            self._put(conn, job)

    def heartbeat(self, job: JobRecord) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE jobs SET record = json_set(record, '$.heartbeat_at', ?) WHERE id = ?",
                (job.heartbeat_at, job.id),
            )

    def claim(self, owner: str) -> JobRecord | None:
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at LIMIT 1"
            ).fetchone()
            job = None if row is None else self._load(conn, row[0])
            if job is None:
                return None
            job.claimed_by(owner)
            self._put(conn, job)
            return job

    def running(self) -> list[JobRecord]:
        rows = self._conn.execute("SELECT record FROM jobs WHERE status = 'running'").fetchall()
        return [_record(json.loads(row[0])) for row in rows]

    def release(self, job: JobRecord, previous_owner: str | None) -> bool:
        with self._transaction() as conn:
            current = self._load(conn, job.id)
            if current is None or current.status != "running" or current.owner != previous_owner:
                return False
            self._put(conn, job)
            return True

    def finish(self, job: JobRecord) -> None:
        self.save(job)

    def pending(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()
        return int(row[0])


# -- Redis ---------------------------------------------------------------------------------

_PREFIX = "ragline:job:"
# Claim: the oldest queued id onto the running list and the record marked, in one step.
_CLAIM = """
local id = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
if not id then return false end
redis.call('HSET', ARGV[1] .. id, unpack(ARGV, 2))
return id
"""
# Release: off the running list (the one replica for which LREM finds it), the record
# rewritten, and queued again when ARGV[2] says so.
_RELEASE = """
if redis.call('LREM', KEYS[2], 1, ARGV[1]) == 0 then return 0 end
redis.call('HSET', ARGV[3] .. ARGV[1], unpack(ARGV, 4))
if ARGV[2] == '1' then redis.call('RPUSH', KEYS[1], ARGV[1]) end
return 1
"""


def _encode(values: dict[str, Any]) -> dict[FieldT, EncodableT]:
    return {key: json.dumps(value) for key, value in values.items()}


def _flat(values: dict[str, Any]) -> list[str]:
    return [part for key, value in values.items() for part in (key, json.dumps(value))]


class RedisJobStore:
    PENDING = "ragline:jobs:pending"
    RUNNING = "ragline:jobs:running"

    def __init__(self, url: str) -> None:
        import redis

        self._errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)
        self._claim = self.client.register_script(_CLAIM)
        self._release = self.client.register_script(_RELEASE)

    @staticmethod
    def _key(job_id: str) -> str:
        return _PREFIX + job_id

    def _call(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except self._errors as exc:
            raise JobQueueUnavailable(f"job queue unavailable (Redis: {exc})") from exc

    def submit(self, job: JobRecord) -> None:
        def push() -> None:
            pipe = self.client.pipeline()
            pipe.hset(self._key(job.id), mapping=_encode(asdict(job)))
            pipe.expire(self._key(job.id), JOB_TTL_S)
            pipe.rpush(self.PENDING, job.id)
            pipe.execute()

        self._call(push)

    def get(self, job_id: str) -> JobRecord | None:
        raw = self._call(lambda: self.client.hgetall(self._key(job_id)))
        if not raw:
            return None
        return _record({k.decode(): json.loads(v) for k, v in raw.items()})

    def save(self, job: JobRecord) -> None:
        self._call(lambda: self.client.hset(self._key(job.id), mapping=_encode(asdict(job))))

    def heartbeat(self, job: JobRecord) -> None:
        value = json.dumps(job.heartbeat_at)
        self._call(lambda: self.client.hset(self._key(job.id), "heartbeat_at", value))

    def claim(self, owner: str) -> JobRecord | None:
        probe = JobRecord(collection="", paths=[])
        probe.claimed_by(owner)
        marks = {k: getattr(probe, k) for k in ("status", "owner", "heartbeat_at")}
        keys = [self.PENDING, self.RUNNING]
        job_id = self._call(lambda: self._claim(keys=keys, args=[_PREFIX, *_flat(marks)]))
        if job_id is None:
            return None
        return self.get(job_id.decode() if isinstance(job_id, bytes) else str(job_id))

    def running(self) -> list[JobRecord]:
        ids = self._call(lambda: self.client.lrange(self.RUNNING, 0, -1))
        jobs = [self.get(i.decode() if isinstance(i, bytes) else str(i)) for i in ids]
        return [job for job in jobs if job is not None]

    def release(self, job: JobRecord, previous_owner: str | None) -> bool:
        # Of the replicas releasing one job, LREM answers 1 to exactly one.
        requeue = "1" if job.status == "queued" else "0"
        args = [job.id, requeue, _PREFIX, *_flat(asdict(job))]
        keys = [self.PENDING, self.RUNNING]
        return bool(self._call(lambda: self._release(keys=keys, args=args)))

    def finish(self, job: JobRecord) -> None:
        def write() -> None:
            pipe = self.client.pipeline()
            pipe.hset(self._key(job.id), mapping=_encode(asdict(job)))
            pipe.lrem(self.RUNNING, 1, job.id)
            pipe.execute()

        self._call(write)

    def pending(self) -> int:
        try:
            return int(self.client.llen(self.PENDING))
        except self._errors:
            return 0


def make_job_store(redis_url: str | None, data_dir: Path) -> JobStore:
    return RedisJobStore(redis_url) if redis_url else SqliteJobStore(data_dir / "jobs.sqlite")
