"""The Ray executor on a real two-node Ray cluster on loopback (``ray_cluster``): the
same collection as the local executor, re-ingestion by hash, and workers killed
mid-job. The kill -9 test of the driver is in test_ingest_pipeline.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from ragline.cli import app
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline, IngestReport, Status
from ragline.ingest.types import Chunk
from ragline.settings import Settings, load_settings

if TYPE_CHECKING:
    from tests.conftest import RayCluster

pytest.importorskip("ray")

RAY_SET = [
    "fake-text.txt",
    "simple-table.md",
    "docx-tables.docx",
    "fake-email.eml",
    "fake-html.html",
    "example-10k-1p.html",
    "norwich-city.txt",
    "fake-power-point.pptx",
    "pdf/layout-parser-paper-fast.pdf",
    "README.md",
    "empty.txt",
    "CantinaBand3.wav",
]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What must not depend on the executor: documents, chunks, per-file outcomes."""

    documents: dict[str, tuple[str, str, int]]  # source -> (hash, file type, chunks)
    chunks: list[tuple[str, int, str, int, tuple[str, ...]]]  # in (source, position) order
    vectors: np.ndarray  # in the same order
    outcomes: dict[str, tuple[Status, str]]  # source -> (status, error reason)


def _snapshot(store: Collection, report: IngestReport) -> Snapshot:
    chunks = sorted(store.docstore.iter_chunks(), key=lambda c: (c.source, c.position))
    keys = [(c.source, c.position) for c in chunks]
    assert len(keys) == len(set(keys)), "no duplicated chunks"
    assert store.index.ntotal == len(chunks)
    vectors = store.docstore.vectors([c.chunk_id for c in chunks], store.index.dim)
    return Snapshot(
        documents={
            d.source: (d.content_hash, d.file_type, d.n_chunks) for d in store.docstore.documents()
        },
        chunks=[(c.source, c.position, c.text, c.token_count, c.headings) for c in chunks],
        vectors=np.stack([vectors[c.chunk_id] for c in chunks]),
        outcomes={o.source: (o.status, o.detail) for o in report.outcomes},
    )


def _assert_same(ray_run: Snapshot, local_run: Snapshot) -> None:
    assert ray_run.documents == local_run.documents
    assert ray_run.chunks == local_run.chunks
    assert ray_run.outcomes == local_run.outcomes
    # Other processes, other batches: the same vectors up to rounding, which for a bf16 or
    # int8 runtime (where the machine chose one) depends on the batch's shape.
    cosines = np.sum(ray_run.vectors * local_run.vectors, axis=1)
    assert cosines.min() >= 0.999, cosines.min()


@dataclass(frozen=True, slots=True)
class Corpus:
    docs: Path
    settings: Settings  # the local executor's
    local: Snapshot  # the local executor's collection and report


@pytest.fixture(scope="module")
def corpus(
    example_docs: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Corpus:
    root = tmp_path_factory.mktemp("ray-ingest")
    docs = root / "docs"
    docs.mkdir()
    for name in RAY_SET:
        shutil.copy(example_docs / name, docs / Path(name).name)
    shutil.copy(docs / "simple-table.md", docs / "copy-of-table.md")  # a duplicate
    settings = load_settings(
        storage={"data_dir": root / "var"},
        parsing={"workers": 1},
        pipeline={"commit_chunks": 16},  # several commit groups
    )
    store = _open(settings, "local")
    report = IngestPipeline(settings, store, embedder=embedder).run([docs])
    assert report.executor == "local" and report.count(Status.DUPLICATE) == 1
    return Corpus(docs, settings, _snapshot(store, report))


def _open(settings: Settings, name: str) -> Collection:
    return Collection.open(settings.storage.collections_dir, name, settings.index, create=True)


def _ray_settings(corpus: Corpus, address: str) -> Settings:
    return corpus.settings.model_copy(
        update={
            "ingest": corpus.settings.ingest.model_copy(update={"executor": "ray"}),
            "ray": corpus.settings.ray.model_copy(update={"address": address}),
        }
    )


@pytest.mark.slow
def test_ray_executor_ingests_what_the_local_one_does(
    corpus: Corpus, ray_cluster: RayCluster, embedder: Embedder, tmp_path: Path
) -> None:
    settings = _ray_settings(corpus, ray_cluster.address)
    store = _open(settings, "on-ray")
    pipeline = IngestPipeline(settings, store, embedder=embedder)
    report = pipeline.run([corpus.docs])
    assert report.executor == "ray"
    _assert_same(_snapshot(store, report), corpus.local)
    failures = {Path(o.source).name for o in report.failures}
    assert failures == {"empty.txt", "CantinaBand3.wav"}

    again = pipeline.run([corpus.docs])  # unchanged files are skipped by hash
    assert again.chunks_embedded == 0
    assert again.count(Status.UNCHANGED) == len(corpus.local.documents)

    changed = corpus.docs / "fake-text.txt"
    original = changed.read_text()
    try:
        changed.write_text("Tidal energy in Norway, measured on a Ray cluster.\n")
        updated = pipeline.run([corpus.docs])
    finally:
        changed.write_text(original)
    assert [Path(o.source).name for o in updated.outcomes if o.status == Status.UPDATED] == [
        "fake-text.txt"
    ]
    assert updated.chunks_embedded == 1


def _pids_titled(prefix: str) -> Iterator[int]:
    """This user's processes whose title (Ray sets it per task) starts with ``prefix``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(prefix):
            yield int(entry.name)


class Killer(threading.Thread):
    """For each (title prefix, action) in turn: as soon as a process with that title
    shows up, run the action on its pid."""

    def __init__(self, steps: list[tuple[str, Callable[[int], None]]]) -> None:
        super().__init__(daemon=True)
        self.steps = list(steps)
        self.done: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while self.steps and not self.stop.is_set():
            prefix, action = self.steps[0]
            for pid in _pids_titled(prefix):
                action(pid)
                self.done.append(prefix)
                self.steps.pop(0)
                break
            time.sleep(0.02)


@pytest.mark.slow
def test_a_worker_and_a_node_lost_mid_job_leave_the_same_collection(
    corpus: Corpus, ray_cluster: RayCluster, embedder: Embedder
) -> None:
    settings = _ray_settings(corpus, ray_cluster.address)
    store = _open(settings, "lost-workers")
    # Ray's process titles: a parse task's worker process is killed while it parses; the
    # other node (with an embedding actor) is lost once the actors are up, and a fresh
    # one joins after the job.
    killer = Killer(
        [
            ("ray::_parse_task", lambda pid: os.kill(pid, signal.SIGKILL)),
            ("ray::MapWorker", lambda _: ray_cluster.remove_worker_node()),
        ]
    )
    killer.start()
    try:
        report = IngestPipeline(settings, store, embedder=embedder).run([corpus.docs])
    finally:
        killer.stop.set()
        killer.join()
        if len(ray_cluster.cluster.worker_nodes) == 0:
            ray_cluster.add_worker_node()
    assert killer.done == ["ray::_parse_task", "ray::MapWorker"], "both faults landed"
    _assert_same(_snapshot(store, report), corpus.local)


@pytest.mark.slow
def test_http_ingestion_jobs_run_on_ray(corpus: Corpus, ray_cluster: RayCluster) -> None:
    """``ingest.executor: ray`` in the server's settings: an ingestion job of the HTTP API
    (run in the job slot's ingestion process) parses and embeds on the cluster."""
    from servers import serve_in_thread
    from test_api_fast import FakeEngine

    from ragline.api.app import create_app

    settings = load_settings(
        storage={"data_dir": corpus.docs.parent / "api"},
        cache={"redis_url": None},
        ingest={"executor": "ray"},
        ray={"address": ray_cluster.address},
        api={"ingest_roots": [str(corpus.docs)]},
    )
    app = create_app(settings, engine_factory=lambda _: FakeEngine())
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        paths = [str(corpus.docs / "fake-text.txt"), str(corpus.docs / "empty.txt")]
        accepted = http.post("/v1/collections/from-api/documents", json={"paths": paths})
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        deadline = time.monotonic() + 300
        while job["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
            job = http.get(f"/v1/jobs/{job['id']}").json()
        assert job["status"] == "succeeded", job
        assert job["outcomes"] == {"ingested": 1, "failed": 1}
        assert job["executor"] == "ray", job
    store = Collection.open(settings.storage.collections_dir, "from-api", settings.index)
    expected = [c for c in corpus.local.chunks if c[0].endswith("fake-text.txt")]
    ours = sorted(store.docstore.iter_chunks(), key=lambda c: c.position)
    assert [(c.position, c.text) for c in ours] == [(c[1], c[2]) for c in expected]


@pytest.mark.slow
def test_a_file_over_the_time_limit_is_an_error_row(
    example_docs: Path, ray_cluster: RayCluster, embedder: Embedder, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(example_docs / "fake-text.txt", docs)
    # Through unstructured's text partitioner this book takes about 90 s on this machine.
    shutil.copy(example_docs / "book-war-and-peace-1225p.txt", docs)
    settings = load_settings(
        storage={"data_dir": tmp_path / "var"},
        parsing={"file_timeout_s": 20, "stream_text_mb": 100},
        ingest={"executor": "ray"},
        ray={"address": ray_cluster.address},
    )
    store = _open(settings, "timeout")
    report = IngestPipeline(settings, store, embedder=embedder).run([docs])
    outcomes = {Path(o.source).name: (o.status, o.detail) for o in report.outcomes}
    assert outcomes == {
        "fake-text.txt": (Status.INGESTED, ""),
        "book-war-and-peace-1225p.txt": (Status.FAILED, "timed out after 20s while parsing"),
    }
    assert report.seconds < 75, "the book was not waited for"
    deadline = time.monotonic() + 15
    while list(_pids_titled("ray::_parse_task")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not list(_pids_titled("ray::_parse_task")), "its worker was killed"


@pytest.mark.slow
def test_cli_ingest_on_ray_reports_as_a_local_run(
    example_docs: Path, ray_cluster: RayCluster, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("fake-text.txt", "empty.txt"):
        shutil.copy(example_docs / name, docs)
    env = {"RAGLINE_STORAGE__DATA_DIR": str(tmp_path / "var")}
    command = ["ingest", str(docs), "-c", "cli", "--executor", "ray"]
    result = CliRunner().invoke(app, [*command, "--ray-address", ray_cluster.address], env=env)
    assert result.exit_code == 0, result.output
    assert "(ray executor)" in result.output and "emb/s" in result.output
    assert "chunks embedded at" in result.output
    assert "files with errors" in result.output and "empty file (0 bytes)" in result.output


def test_token_batches_hold_at_most_the_budget() -> None:
    from ragline.ingest.distributed.embed import token_batches

    def chunk(text: str, tokens: int) -> Chunk:
        return Chunk(text, "s", 0, tokens, "", "text")

    chunks = [chunk("a", 10), chunk("b", 20), chunk("c", 5), chunk("d", 50), chunk("e", 1)]
    assert token_batches(chunks, 32) == [["a", "b"], ["c"], ["d"], ["e"]]
    assert token_batches(chunks, 1000) == [["a", "b", "c", "d", "e"]]
    assert token_batches([], 32) == []


def test_without_ray_the_ray_executor_says_what_to_install(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if the extra were not installed\n"
        "from typer.testing import CliRunner\n"
        "from ragline.cli import app\n"
        f"result = CliRunner().invoke(app, ['ingest', {str(tmp_path)!r}, '--executor', 'ray'])\n"
        "print(result.exit_code, result.output)\n"
    )
    env = {**os.environ, "RAGLINE_STORAGE__DATA_DIR": str(tmp_path / "var")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1 ") and "pip install 'ragline[ray]'" in done.stdout


@pytest.mark.slow
def test_local_ingestion_never_imports_ray(example_docs: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(example_docs / "fake-text.txt", docs)
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ragline.cli import app\n"
        f"result = CliRunner().invoke(app, ['ingest', {str(docs)!r}, '-c', 'plain'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('ray imported' if 'ray' in sys.modules else 'no ray')\n"
    )
    env = {**os.environ, "RAGLINE_STORAGE__DATA_DIR": str(tmp_path / "var")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "no ray"
