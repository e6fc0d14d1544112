"""The ingestion process a server runs its jobs in: all of it at ingest.nice, prepared
by the caller's hook, progress relayed as it happens, a failed run reported with its own
error, and a process killed mid-run replaced by the next run, which resumes where the
killed one's commits stopped."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from bench.fake_serve import hash_embed
from ragline.ingest.collection import CollectionError
from ragline.ingest.pipeline import FileOutcome, Status
from ragline.service.collections import CollectionService
from ragline.service.components import Components
from ragline.service.ingest_process import IngestProcess, IngestProcessDied
from ragline.settings import load_settings

NICE = 7


class Recorded:
    def __init__(self, on_file: object = None) -> None:
        self.total: list[int] = []
        self.files: list[FileOutcome] = []
        self.chunks = 0
        self.on_file = on_file

    def start(self, total_files: int) -> None:
        self.total.append(total_files)

    def file_done(self, outcome: FileOutcome) -> None:
        self.files.append(outcome)
        if callable(self.on_file):
            self.on_file()

    def embedded(self, n_chunks: int, seconds: float) -> None:
        self.chunks += n_chunks


def _nice(pid: int) -> int:
    # /proc/<pid>/stat: the 19th field, counted after the command's closing parenthesis.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_runs_niced_relays_progress_and_outlives_a_failed_run_but_not_a_kill(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(6):
        (folder / f"note-{i}.txt").write_text(f"Note {i}: the harbour logs {i * 13} ships.")
    settings = load_settings(
        storage={"data_dir": tmp_path / "var"},
        ingest={"nice": NICE},
        parsing={"workers": 1},
        pipeline={"commit_chunks": 1},  # a commit per file: a kill lands between commits
    )
    # The faults benchmark's stand-in model: vectors of hashed words, >= 0 and sparse.
    process = IngestProcess(settings, prepare=hash_embed)
    try:
        first = Recorded()
        report = process.ingest("harbour", [folder / "note-0.txt"], progress=first)
        pid = process.pid
        assert pid is not None and _alive(pid)
        assert _nice(pid) == max(NICE, os.getpriority(os.PRIO_PROCESS, 0))
        assert first.total == [1] and [o.status for o in first.files] == [Status.INGESTED]
        assert first.files == report.outcomes and first.chunks == report.outcomes[0].chunks > 0
        service = CollectionService(Components(settings))
        with service.reading("harbour") as collection:
            ((_, vectors),) = collection.docstore.iter_vectors(collection.index.dim)
        assert (vectors >= 0).all() and (vectors > 0).sum(axis=1).max() < 20, "not prepared"

        with pytest.raises(CollectionError, match="invalid collection name"):
            process.ingest("../outside", [folder])
        assert process.pid == pid, "a run that failed must not cost the process"

        killed = Recorded(on_file=lambda: os.kill(pid, signal.SIGKILL))
        with pytest.raises(IngestProcessDied):
            process.ingest("harbour", [folder], progress=killed)
        assert not _alive(pid) and process.pid is None
        assert killed.files, "the kill came after the first file's commit"

        resumed = Recorded()
        report = process.ingest("harbour", [folder], progress=resumed)
        assert process.pid not in (None, pid)
        statuses = {Path(o.source).name: o.status for o in report.outcomes}
        assert len(statuses) == 6
        assert statuses["note-0.txt"] == Status.UNCHANGED
        # What the killed run committed is found unchanged, the rest is ingested now.
        assert set(statuses.values()) <= {Status.UNCHANGED, Status.INGESTED}
        assert Status.INGESTED in statuses.values()
        stored = service.documents("harbour")
        assert sorted(Path(d.source).name for d in stored) == sorted(statuses)
        last = process.pid
    finally:
        process.close()
    assert last is not None and not _alive(last)
