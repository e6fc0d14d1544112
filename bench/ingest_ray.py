"""The Ray executor against the local one, on the same files in the same run.

A two-node Ray cluster on loopback (one CPU per node, ``ray.cluster_utils.Cluster``)
stands in for a cluster that is already running: its start is not timed. Each Ray run
is a job of its own (connect, parse tasks, embedding actors that load the model, commit,
disconnect), as ``ragline ingest --executor ray --ray-address ...`` is; each local run
starts its own parse processes. From two corpus sizes, time = fixed + n x per-file for
each executor gives Ray's overhead per file and the size where it would pay off.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Literal

from bench.common import spread, write_table
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline, IngestReport, Status, discover
from ragline.settings import Settings

Executor = Literal["local", "ray"]
EXECUTORS: tuple[Executor, Executor] = ("local", "ray")
MAX_FILE_KB = 512  # a sample of ordinary files: no 1,000-page books


@dataclass(slots=True)
class Runs:
    """One executor on one corpus: a figure per repeat."""

    files: int = 0
    chunks: int = 0
    seconds: list[float] = field(default_factory=list)
    docs_s: list[float] = field(default_factory=list)
    emb_s: list[float] = field(default_factory=list)


@contextmanager
def loopback_cluster() -> Iterator[str]:
    """Two Ray nodes of one CPU each on this machine; yields the address to join."""
    import ray
    from ray.cluster_utils import Cluster

    node: dict[str, Any] = {
        "num_cpus": 1,
        "object_store_memory": 256 * 2**20,
        "include_dashboard": False,
    }
    cluster = Cluster(initialize_head=True, head_node_args=node)
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    try:
        yield str(cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()


def sample_files(folder: Path, count: int) -> list[Path]:
    """The first ``count`` files of ``folder`` (sorted, recursively) under MAX_FILE_KB."""
    small = [p for p in discover([folder]) if p.stat().st_size <= MAX_FILE_KB * 1024]
    return small[:count]


def _ingest(settings: Settings, embedder: Embedder, files: Sequence[Path]) -> IngestReport:
    with tempfile.TemporaryDirectory() as tmp:
        run = settings.model_copy(deep=True)
        run.storage.data_dir = Path(tmp)
        store = Collection.open(run.storage.collections_dir, "bench", run.index, create=True)
        try:
            return IngestPipeline(run, store, embedder=embedder).run(list(files))
        finally:
            store.close()
            if run.ingest.executor == "ray":
                import ray

                ray.shutdown()  # the job ends, as a CLI run's does


def measure(
    corpora: dict[str, list[Path]],
    settings: Settings,
    embedder: Embedder,
    address: str,
    repeats: int,
) -> dict[str, dict[str, Runs]]:
    out: dict[str, dict[str, Runs]] = {}
    for name, files in corpora.items():
        out[name] = {executor: Runs(files=len(files)) for executor in EXECUTORS}
        for repeat in range(repeats):
            order = EXECUTORS if repeat % 2 == 0 else EXECUTORS[::-1]
            for executor in order:
                run = settings.model_copy(deep=True)
                run.ingest.executor = executor
                run.ray.address = address
                report = _ingest(run, embedder, files)
                runs = out[name][executor]
                runs.chunks = report.chunks_embedded
                runs.seconds.append(report.seconds)
                runs.docs_s.append(report.count(Status.INGESTED) / report.seconds)
                runs.emb_s.append(report.chunks_embedded / max(report.embed_seconds, 1e-9))
            print(f"  executors, {name}: repeat {repeat + 1}/{repeats} done", flush=True)
    return out


@dataclass(frozen=True, slots=True)
class Line:
    """time = fixed + files x per_file, from the medians at two corpus sizes."""

    fixed: float
    per_file: float

    @classmethod
    def through(cls, points: Sequence[tuple[int, float]]) -> Line:
        (n1, t1), (n2, t2) = points[0], points[-1]
        per_file = (t2 - t1) / (n2 - n1) if n2 != n1 else 0.0
        return cls(t1 - per_file * n1, per_file)


def break_even(local: Line, ray: Line) -> float | None:
    """Files from which the Ray run is faster; None if never (per file it is slower)."""
    if ray.per_file >= local.per_file:
        return None
    return max(0.0, (ray.fixed - local.fixed) / (local.per_file - ray.per_file))


def write(results: dict[str, dict[str, Runs]], repeats: int, env: str) -> None:
    rows: list[list[object]] = []
    lines: dict[str, Line] = {}
    for executor in EXECUTORS:
        points = [(r[executor].files, median(r[executor].seconds)) for r in results.values()]
        lines[executor] = Line.through(sorted(points))
    for corpus, runs in results.items():
        local_s = median(runs["local"].seconds)
        for executor in EXECUTORS:
            series = runs[executor]
            overhead = (median(series.seconds) - local_s) / series.files
            rows.append([
                corpus, executor, series.files, series.chunks, spread(series.seconds, 1),
                spread(series.docs_s), spread(series.emb_s),
                f"{overhead:+.2f}" if executor == "ray" else "-",
            ])  # fmt: skip
    local, ray = lines["local"], lines["ray"]
    even = break_even(local, ray)
    notes = [
        "Environment: " + env,
        "Ray: a two-node cluster on loopback, one CPU per node (ray.cluster_utils.Cluster), "
        "started before timing; each Ray run is a job of its own (connect, parse tasks, "
        "embedding actors loading the model, disconnect), as `ragline ingest --executor ray "
        "--ray-address ...` is. Local: parsing.workers processes, the model already loaded. "
        f"Median (min-max) of {repeats} repeats, executors in alternating order.",
        "embeddings/s: chunks / the time the committer waited for vectors (on Ray that "
        "includes the actors' start).",
        f"Fitted time = fixed + files x per-file: local {local.fixed:.1f} s + "
        f"{local.per_file:.2f} s/file, Ray {ray.fixed:.1f} s + {ray.per_file:.2f} s/file: "
        f"Ray costs {ray.fixed - local.fixed:+.1f} s per job and "
        f"{ray.per_file - local.per_file:+.2f} s per file. "
        + (
            f"Ray pays off from about {even:.0f} files on this machine."
            if even is not None
            else "On this machine Ray does not pay off at any corpus size: it runs on the "
            "same cores, so its per-file cost is not lower."
        ),
    ]
    write_table(
        "ingest-ray",
        "Ingestion: Ray executor vs local executor, same files, same run",
        [
            "corpus", "executor", "files", "chunks", "seconds", "docs/s", "embeddings/s",
            "Ray overhead s/file",
        ],
        rows,
        notes,
    )  # fmt: skip
