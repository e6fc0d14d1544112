"""An ingestion job's record: what to ingest, who runs it, and how far it got."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

from ragline.api.schemas import FileError, JobOut

JobStatus = Literal["queued", "running", "succeeded", "failed"]


@dataclass(slots=True)
class JobRecord:
    collection: str
    paths: list[str]  # absolute paths of the files to read
    force: bool = False
    roots: list[str] | None = None  # files are read only if, once opened, they lie under these
    sources: dict[str, str] = field(default_factory=dict)  # path -> document source (uploads)
    staging: str | None = None  # the job's own upload folder, removed when the job ends
    id: str = field(default_factory=lambda: f"job-{uuid.uuid4().hex[:16]}")
    status: JobStatus = "queued"
    files_total: int = 0
    files_done: int = 0
    done: list[str] = field(default_factory=list)  # sources finished: a resumed job skips them
    chunks_embedded: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    message: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    owner: str | None = None  # the runner that claimed it (see jobs.runner_id)
    heartbeat_at: float | None = None
    attempts: int = 0  # runs interrupted by a crash so far
    executor: str | None = None  # where the finished run parsed and embedded: local, ray

    def source(self, path: str) -> str:
        return self.sources.get(path, path)

    def remaining(self) -> list[str]:
        done = set(self.done)
        return [path for path in self.paths if self.source(path) not in done]

    def claimed_by(self, owner: str) -> None:
        self.status, self.owner, self.heartbeat_at = "running", owner, time.time()

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
            executor=self.executor,
        )
