"""Large collections: import, memory, query latency, approximate-search recall, freshness
and latency under a concurrent ingest, at 100k and 1M chunks.

    python -m bench.scale [--sizes 100000,1000000] [--queries 200] [--quick]

Each collection is built the way a user moving from another vector store would: a
Parquet file of (id, text, embedding) imported with ``ragline import`` (a subprocess,
timed). Texts are SciFact sentences recombined into 3-6 sentence passages. Vectors: the
real model's for the first ``--sample`` passages, and for the rest a clustered synthetic
set (each a real vector plus Gaussian noise, normalised), so that neighbourhoods look
like real ones without hours of embedding; the table says so. A fresh process then opens
the collection as a server would (``--probe``) and measures: its RSS, query latency per
mode (SciFact test queries, one at a time, no cache), dense recall@10 of the index
against exact search, how long a committed document takes to become searchable, and
hybrid latency while another writer commits groups of chunks. Peers in the same run:
the whole-rebuild BM25 the query path used before (bm25s re-indexing every chunk), and
LanceDB (bench/peers/lance_store.py: the same rows and embedder, its IVF-PQ index, full-text
index and hybrid search) where .venv-bench has it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import RESULTS, SHARED_DATA, Bar, Panel, environment, write_plot, write_table
from ragline.evaluation.beir import load_beir
from ragline.evaluation.metrics import percentile
from ragline.settings import PROJECT_ROOT, load_settings

SCIFACT = SHARED_DATA / "beir" / "scifact"
WORK = PROJECT_ROOT / "var" / "bench-scale"
COLLECTION = "scale"
IN_SERVER_FILES = 600  # the in-server job runs to its end: long enough, no longer
NOISE = 0.05  # per-dimension noise around a real vector: cosine to it ~0.75


def _sentences() -> list[str]:
    data = load_beir(SCIFACT, "test")
    out: list[str] = []
    for doc in data.corpus.values():
        out += [s.strip() + "." for s in doc.text.split(". ") if len(s.split()) >= 4]
    return out


def make_parquet(path: Path, n: int, sample: int, seed: int = 0) -> None:
    """``n`` rows: passages of recombined sentences; the first ``sample`` embedded by the
    real model, the rest synthetic around them. Written in row groups (bounded memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ragline.service.components import Components

    rng = np.random.default_rng(seed)
    picker = random.Random(seed)
    sentences = _sentences()

    def passage() -> str:
        return " ".join(picker.choice(sentences) for _ in range(picker.randint(3, 6)))

    real_texts = [passage() for _ in range(sample)]
    embedder = Components(load_settings()).embedder
    real = embedder.encode(real_texts)
    dim = real.shape[1]
    schema = pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("embedding", pa.list_(pa.float32()))]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")  # renamed when whole: reused by reruns
    with pq.ParquetWriter(partial, schema) as writer:
        for start in range(0, n, 50_000):
            size = min(50_000, n - start)
            ids = [f"p{start + i}" for i in range(size)]
            texts: list[str] = []
            vectors = np.empty((size, dim), dtype=np.float32)
            for i in range(size):
                row = start + i
                if row < sample:
                    texts.append(real_texts[row])
                    vectors[i] = real[row]
                else:
                    texts.append(passage())
                    vectors[i] = real[rng.integers(sample)]
            synthetic = np.arange(start, start + size) >= sample
            noise = rng.normal(0, NOISE, size=(int(synthetic.sum()), dim)).astype(np.float32)
            vectors[synthetic] += noise
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            table = pa.table({"id": ids, "text": texts, "embedding": list(vectors)}, schema=schema)
            writer.write_table(table)
    os.replace(partial, path)


def job_files(folder: Path, count: int, skip: int = 0) -> Path:
    """``count`` SciFact abstracts (after the first ``skip``) as text files: what a
    concurrent ingestion job reads."""
    if folder.is_dir() and len(list(folder.glob("*.txt"))) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    docs = list(load_beir(SCIFACT, "test").corpus.items())[skip : skip + count]
    for doc_id, doc in docs:
        (folder / f"scifact-{doc_id}.txt").write_text(f"{doc.title}\n\n{doc.text}\n")
    return folder


def latency_stats(busy: list[float], commits: int, running: bool | None = None) -> dict[str, float]:
    """p50, p99 and max of latencies taken while a writer worked, with its commits."""
    stats = {
        "p50": statistics.median(busy),
        "p99": percentile(busy, 99),
        "max": max(busy),
        "commits": commits,
    }
    if running is not None:
        stats["running_throughout"] = running
    return stats


def _rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory; ``RssAnon``: its private part (mapped files'
    pages, which other processes share and the kernel can drop, left out)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# -- the probe: a fresh process that opens the collection as a server would ---------------


def probe(
    queries: int,
    data_dir: Path,
    open_only: bool = False,
    files: Path | None = None,
    in_server_files: Path | None = None,
) -> dict[str, Any]:
    from ragline.ingest.collection import Collection
    from ragline.ingest.docstore import DocumentWrite
    from ragline.ingest.priority import lower_thread_priority
    from ragline.ingest.types import Chunk
    from ragline.retrieve.dense import QueryEncoder
    from ragline.retrieve.types import RetrievalRequest
    from ragline.service.collections import CollectionService
    from ragline.service.components import Components
    from ragline.service.ingest_process import IngestProcess

    settings = load_settings(storage={"data_dir": data_dir})
    components = Components(settings)
    service = CollectionService(components)
    collection = service.open(COLLECTION)
    collection.repair()
    # No query-embedding cache: every mode pays for its embedding, as a new query does.
    retriever = components.retriever(
        collection, query_encoder=QueryEncoder(components.embedder, cache_size=0)
    )
    texts = list(load_beir(SCIFACT, "test").queries.values())
    asked = [texts[i % len(texts)] for i in range(queries)]

    def run(query: str, mode: str) -> float:
        started = time.perf_counter()
        retriever.run(
            RetrievalRequest(query, top_k=10, mode=mode, use_cache=False, compress=False)  # type: ignore[arg-type]
        )
        return (time.perf_counter() - started) * 1e3

    opened = time.perf_counter()
    collection.catch_up()
    for query in asked[:5]:
        run(query, "hybrid")
    out: dict[str, Any] = {
        "open_s": time.perf_counter() - opened,
        "rss_mb": _rss_mb(),
        "rss_private_mb": _rss_mb("RssAnon"),
    }
    if open_only:
        collection.close()
        return out
    out["chunks"] = collection.docstore.counts()[1]
    out["index_kind"] = collection.index.describe()
    for mode in ("dense", "bm25", "hybrid"):
        latencies = [run(q, mode) for q in asked]
        out[mode] = {
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
        }

    # Dense recall@10 of the index against exact search over every stored vector.
    embedder = components.embedder
    vectors_q = embedder.encode(asked[:100])
    dim = vectors_q.shape[1]
    ids_all = []
    top: list[list[tuple[float, int]]] = [[] for _ in range(len(vectors_q))]
    for ids, block in collection.docstore.iter_vectors(dim, batch=100_000):
        scores = vectors_q @ block.T
        best = np.argpartition(-scores, min(10, len(ids) - 1), axis=1)[:, :10]
        for q in range(len(vectors_q)):
            top[q] += [(float(scores[q, j]), int(ids[j])) for j in best[q]]
        ids_all.append(len(ids))
    exact = [{cid for _, cid in sorted(found, reverse=True)[:10]} for found in top]

    def recall(searched: Any) -> float:
        hits = [searched.search_dense(vector, 10)[1][0] for vector in vectors_q]
        return statistics.mean(
            len(truth & {int(i) for i in found if i >= 0}) / 10
            for truth, found in zip(exact, hits, strict=True)
        )

    out["recall10"] = recall(collection)
    if settings.index.mmap:
        # The same state read into memory: the mapped index with the commits beside it
        # should find what the in-memory one does (the delta is searched exactly).
        in_memory = Collection.open(
            service.root, COLLECTION, settings.index.model_copy(update={"mmap": False})
        )
        out["recall10_in_memory"] = recall(in_memory)
        in_memory.close()

    # Another writer commits one new document: how long until this reader finds it.
    writer = service.open(COLLECTION)
    marker = "zyxwvut quasiparticle marker"
    vector = vectors_q[0] / np.linalg.norm(vectors_q[0])
    chunk = Chunk(marker, "fresh#1", 0, 4, "fresh", "text")
    with writer.writer_lock():
        writer.write_documents(
            [DocumentWrite("fresh#1", "fresh", "IMPORT", 10, [chunk], vector[None, :])]
        )
        committed = time.perf_counter()
    found_bm25 = found_dense = None
    while (found_bm25 is None or found_dense is None) and time.perf_counter() - committed < 30:
        now = time.perf_counter() - committed
        hits = retriever.run(RetrievalRequest(marker, top_k=1, mode="bm25", use_cache=False))
        if found_bm25 is None and hits.passages and hits.passages[0].source == "fresh#1":
            found_bm25 = now
        _, ids = collection.search_dense(vector, 1)
        stored = collection.docstore.chunks_by_id([int(ids[0][0])])
        if found_dense is None and any(c.source == "fresh#1" for c in stored.values()):
            found_dense = now
    out["searchable_s"] = {"bm25": found_bm25, "dense": found_dense}

    # Hybrid latency while chunks arrive. First a real ingestion job: `ragline ingest` in
    # another process (parse workers, embedding, commit groups, at ingest.nice as every
    # ingestion runs), as a batch ingestion beside a server does. Then a harsher case: a
    # writer thread in this process committing imported groups without pause (an HTTP
    # job's commits share the server's interpreter; no parsing or embedding to pace it).
    rng = np.random.default_rng(1)
    commits = [0]

    def queries_after_first_commit(
        before: int, alive: Callable[[], bool]
    ) -> tuple[list[float], bool]:
        """Hybrid latencies once a job has committed (it must not end first), and whether
        it still ran when the last query returned."""
        deadline = time.monotonic() + 300
        while collection.docstore.generation == before and time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("the ingestion job ended before its first commit")
            time.sleep(0.2)
        busy = [run(q, "hybrid") for q in asked]
        return busy, alive()

    def during_job() -> dict[str, float]:
        before = collection.docstore.generation
        job = subprocess.Popen(
            [sys.executable, "-m", "ragline.cli", "ingest", str(files), "-c", COLLECTION],
            env={**os.environ, "RAGLINE_STORAGE__DATA_DIR": str(data_dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            busy, running = queries_after_first_commit(before, lambda: job.poll() is None)
        finally:
            job.kill()
            job.wait()
        return latency_stats(busy, collection.docstore.generation - before, running)

    def during_job_in_server() -> dict[str, float]:
        # An HTTP ingestion job as api/jobs.py runs it: the serving process follows it
        # from a thread while the job's own ingestion process (at ingest.nice) works.
        assert in_server_files is not None
        before = collection.docstore.generation
        process = IngestProcess(settings)
        job = threading.Thread(
            target=lambda: process.ingest(COLLECTION, [in_server_files]), daemon=True
        )
        job.start()
        try:
            busy, running = queries_after_first_commit(before, job.is_alive)
            job.join()
        finally:
            process.close()
        return latency_stats(busy, collection.docstore.generation - before, running)

    def during_writer(nice: int) -> dict[str, float]:
        stop = threading.Event()
        before = commits[0]

        def ingest() -> None:
            # Its tantivy writer, made anew in this thread, runs its indexing and merge
            # threads at this thread's priority.
            lower_thread_priority(nice)
            group = settings.pipeline.commit_chunks
            with writer.writer_lock():
                while not stop.is_set():
                    vectors = rng.normal(size=(group, dim)).astype(np.float32)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    batch = []
                    for i, v in enumerate(vectors):
                        n = commits[0] * group + i
                        text = f"{asked[n % len(asked)]} load {n}"
                        chunk = Chunk(text, f"load#{n}", 0, 8, f"l{n}", "text")
                        batch.append(
                            DocumentWrite(f"load#{n}", f"l{n}", "IMPORT", 10, [chunk], v[None, :])
                        )
                    writer.write_documents(batch)
                    commits[0] += 1
                writer.lexical.release_writer()

        writer.lexical.release_writer()  # one made in another thread (the freshness step)
        thread = threading.Thread(target=ingest, daemon=True)
        thread.start()
        busy = [run(q, "hybrid") for q in asked]
        stop.set()
        thread.join()
        return latency_stats(busy, commits[0] - before)

    writer.close()  # the job takes the writer lock
    if files is not None:
        out["during_ingest"] = during_job()
    if in_server_files is not None:
        out["during_job_in_server"] = during_job_in_server()
    writer = service.open(COLLECTION)
    out["during_writer_thread"] = during_writer(settings.ingest.nice)
    writer.close()
    collection.close()
    return out


def bm25s_rebuild(data_dir: Path, queries: int) -> dict[str, float]:
    """The previous query path's BM25: every chunk re-tokenised and re-indexed in memory."""
    from ragline.retrieve.bm25 import BM25Index
    from ragline.service.collections import CollectionService
    from ragline.service.components import Components

    settings = load_settings(storage={"data_dir": data_dir})
    collection = CollectionService(Components(settings)).open(COLLECTION)
    chunks = [(c.chunk_id, c.text) for c in collection.docstore.iter_chunks()]
    started = time.perf_counter()
    index = BM25Index([c for c, _ in chunks], [t for _, t in chunks])
    build = time.perf_counter() - started
    texts = list(load_beir(SCIFACT, "test").queries.values())[:queries]
    latencies = []
    for text in texts:
        t = time.perf_counter()
        index.search(text, 50)
        latencies.append((time.perf_counter() - t) * 1e3)
    return {"build_s": build, "p50": statistics.median(latencies), "rss_mb": _rss_mb()}


def lance_peer(parquet: Path, folder: Path, queries: int) -> dict[str, Any]:
    """LanceDB built from the same Parquet file and probed the same way, in this process."""
    from bench.peers import lance_store
    from ragline.service.components import Components

    shutil.rmtree(folder, ignore_errors=True)
    embedder = Components(load_settings()).embedder
    dim = embedder.encode(["dimension"]).shape[1]
    built = lance_store.build(parquet, folder, dim)
    texts = list(load_beir(SCIFACT, "test").queries.values())
    asked = [texts[i % len(texts)] for i in range(queries)]
    out = lance_store.probe(folder, asked, lambda q: embedder.encode(q), _rss_mb)
    out.update(built, disk_mb=_dir_mb(folder), index_kind="IVF-PQ (defaults)")
    return out


def _row(system: str, n: int, build: str, out: dict[str, Any], peer: str) -> list[str]:
    s, busy = out["searchable_s"], out["during_ingest"]
    return [
        system,
        f"{n:,}",
        build,
        f"{out['disk_mb']:,.0f}",
        f"{out['rss_mb']:,.0f}"
        + (f" (private {out['rss_private_mb']:,.0f})" if "mmap" in system else ""),
        out["index_kind"],
        f"{out['dense']['p50']:.1f} / {out['dense']['p95']:.1f}",
        f"{out['bm25']['p50']:.1f} / {out['bm25']['p95']:.1f}",
        f"{out['hybrid']['p50']:.1f} / {out['hybrid']['p95']:.1f}",
        f"{out['recall10']:.3f}"
        + (
            f" (read into memory: {out['recall10_in_memory']:.3f})"
            if "recall10_in_memory" in out
            else ""
        ),
        f"{s['bm25'] * 1e3:.1f} / {s['dense'] * 1e3:.1f}"
        if s["bm25"] is not None and s["dense"] is not None
        else "not found in 30 s",
        f"{out['hybrid']['p99']:.0f} / {busy['p99']:.0f} "
        f"(max {busy['max']:.0f}; {busy['commits']} commits)"
        + (
            f"; HTTP job of the server: {job['p99']:.0f} (max {job['max']:.0f})"
            if (job := out.get("during_job_in_server"))
            else ""
        )
        + (
            f"; writer thread in the server, no pause: {thread['p99']:.0f} "
            f"(max {thread['max']:.0f})"
            if (thread := out.get("during_writer_thread"))
            else ""
        ),
        peer,
    ]


# -- the driver ---------------------------------------------------------------------------


def _child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.scale", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    line: str = result.stdout.strip().splitlines()[-1]
    value: dict[str, Any] = json.loads(line)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sample", type=int, default=2000, help="passages with real vectors")
    parser.add_argument("--peer-max", type=int, default=300_000, help="largest bm25s rebuild")
    parser.add_argument("--quick", action="store_true", help="10k chunks, 50 queries")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--peer", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lance", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--parquet", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--open-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--in-server-files", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--job-files", type=int, default=1500, help="files the ingest job gets")
    args = parser.parse_args()
    if args.lance:
        print(json.dumps(lance_peer(args.parquet, args.lance, args.queries)))
        return
    if args.probe:
        found = probe(args.queries, args.probe, args.open_only, args.files, args.in_server_files)
        print(json.dumps(found))
        return
    if args.peer:
        print(json.dumps(bm25s_rebuild(args.peer, args.queries)))
        return
    if args.quick:
        args.sizes, args.queries, args.sample = "10000", 50, 500

    from bench.peers import lance_store

    lance_version = lance_store.version()
    if lance_version is None:
        print("LanceDB is not installed here (scripts/bench-env.sh): its rows are skipped")
    settings = load_settings()
    rows = []
    lance_measured: dict[int, dict[str, Any]] = {}
    measured: list[tuple[int, dict[str, Any], dict[str, float] | None]] = []
    for n in [int(s) for s in args.sizes.split(",")]:
        parquet = WORK / f"rows-{n}-{args.sample}.parquet"
        if not parquet.exists():
            print(f"writing {parquet} ...", flush=True)
            make_parquet(parquet, n, args.sample)
        data_dir = WORK / f"data-{n}"
        shutil.rmtree(data_dir, ignore_errors=True)
        child_env = {**os.environ, "RAGLINE_STORAGE__DATA_DIR": str(data_dir)}
        print(f"importing {n} rows ...", flush=True)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ragline.cli", "import", str(parquet), "-c", COLLECTION],
            env=child_env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        import_s = time.perf_counter() - started
        disk = _dir_mb(data_dir / "collections" / COLLECTION)
        print(f"probing {n} ...", flush=True)
        files = job_files(WORK / f"job-files-{args.job_files}", args.job_files)
        in_server = job_files(WORK / "job-files-in-server", IN_SERVER_FILES, args.job_files)
        out = _child(
            [
                *("--probe", str(data_dir), "--queries", str(args.queries)),
                *("--files", str(files), "--in-server-files", str(in_server)),
            ]
        )
        out["import_s"], out["disk_mb"] = import_s, disk
        peer = None
        if n <= args.peer_max:
            peer = _child(["--peer", str(data_dir), "--queries", str(args.queries)])
        measured.append((n, out, peer))
        rows.append(
            _row(
                "ragline",
                n,
                f"{import_s:.0f} s ({n / import_s:,.0f} rows/s)",
                out,
                f"{peer['build_s']:.0f} s, query {peer['p50']:.1f} ms" if peer else "not run",
            )
        )
        if n > settings.index.flat_max_vectors:
            # The same collection, its IVF checkpoint mapped instead of read (before the
            # sq8 probe rewrites the checkpoint in the other encoding).
            print(f"probing {n} with index.mmap ...", flush=True)
            mapped = _child(
                [
                    *("--probe", str(data_dir), "--queries", str(args.queries)),
                    *("--files", str(files)),  # the job goes on where the first probe's stopped
                ],
                {"RAGLINE_INDEX__MMAP": "true"},
            )
            mapped["disk_mb"] = _dir_mb(data_dir / "collections" / COLLECTION)
            rows.append(_row("ragline, index.mmap", n, "the same collection", mapped, "-"))
            # The same collection opened with 8-bit IVF lists: rebuilt from the stored
            # vectors when first opened (timed, with that process's RSS), then probed
            # the same way by a fresh process that loads the rebuilt checkpoint.
            print(f"probing {n} with index.ivf_encoding=sq8 ...", flush=True)
            sq8_env = {"RAGLINE_INDEX__IVF_ENCODING": "sq8"}
            rebuilt = _child(["--probe", str(data_dir), "--open-only"], sq8_env)
            sq8 = _child(
                [
                    *("--probe", str(data_dir), "--queries", str(args.queries)),
                    *("--files", str(files)),  # the job goes on where the first probe's stopped
                ],
                sq8_env,
            )
            sq8["disk_mb"] = _dir_mb(data_dir / "collections" / COLLECTION)
            build = (
                f"index rebuilt when opened: {rebuilt['open_s']:.0f} s "
                f"(RSS {rebuilt['rss_mb']:,.0f} MB)"
            )
            rows.append(_row("ragline, ivf_encoding sq8", n, build, sq8, "-"))
        if lance_version:
            print(f"LanceDB {n} ...", flush=True)
            lance = _child(
                [
                    "--lance",
                    str(WORK / f"lance-{n}"),
                    "--parquet",
                    str(parquet),
                    "--queries",
                    str(args.queries),
                ]
            )
            build = (
                f"{lance['build_s']:.0f} s ({n / lance['build_s']:,.0f} rows/s; index "
                f"{lance['vector_index_s']:.0f} s, full text {lance['fts_index_s']:.0f} s)"
            )
            rows.append(_row(f"LanceDB {lance_version}", n, build, lance, "-"))
            lance_measured[n] = lance
            shutil.rmtree(WORK / f"lance-{n}", ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)

    env = environment(["faiss-cpu", "tantivy", "bm25s", "pyarrow", "sentence-transformers"])
    notes = [
        "Environment: " + env,
        f"Rows: SciFact sentences recombined into 3-6 sentence passages; vectors: "
        f"{settings.embedding.model} for the first {args.sample}, the rest synthetic "
        f"(a real vector + N(0, {NOISE}) noise per dimension, normalised). Imported with "
        f"`ragline import` in a subprocess (commit groups of {settings.pipeline.import_rows} "
        "rows; the FAISS checkpoint is written at the end).",
        f"Queries: {args.queries} SciFact test queries, one at a time, top 10, no result "
        "cache, in a fresh process that opened the collection as a server does (RSS after "
        "opening and a warm-up). Recall@10: the index's top 10 against exact inner-product "
        "search over every stored vector, 100 queries.",
        "Searchable after: a document committed by another writer, until this reader's next "
        "query finds it (BM25 / dense). p99 during ingest: hybrid queries while an "
        f"ingestion job (`ragline ingest` of {args.job_files} SciFact abstracts as text "
        "files, in another process: parsing, embedding, commit groups, at `ingest.nice` "
        f"{settings.ingest.nice}) commits into the collection; then while the same kind of "
        f"job ({IN_SERVER_FILES} other abstracts) runs as an HTTP ingestion job does: in "
        "the ingestion process the serving process starts for its job slot (at the same "
        "nice), followed from a thread of the serving process; then while a writer thread "
        "in the serving process commits imported groups without pause (at the same nice).",
        "ragline, index.mmap: the same collection probed the same way by a fresh process "
        "with `index.mmap: true` (the IVF checkpoint mapped from disk, commits since kept "
        "beside it); its RSS counts the mapped pages the queries touched, which every "
        "process mapping the file shares (private: its own memory).",
        "ragline, ivf_encoding sq8: the same collection opened with `index.ivf_encoding: "
        "sq8` (IVF lists of one byte per dimension instead of float32): its index rebuilt "
        "from the stored vectors by a first process (time and RSS after it), then probed "
        "the same way by a fresh one that loads the rebuilt checkpoint.",
        "Peers: the whole-rebuild BM25 (bm25s) the query path used before: time to re-index "
        "every chunk, which it did after every commit; LanceDB "
        f"({lance_version or 'not installed in this run'}), built from the same Parquet file "
        "(table, then `create_index(metric='cosine')`: IVF-PQ with its defaults, then "
        "`create_fts_index('text')`), vector searches re-ranked by full vectors "
        "(`refine_factor(10)`), queried with the same embedder: dense, full text, "
        "hybrid (its RRF), recall@10 against its own exact search, a row added with "
        "`table.add` until found, hybrid while another connection adds rows.",
    ]
    write_table(
        "scale",
        "Large collections: one machine, no rebuilds",
        [
            "system",
            "chunks",
            "import / build",
            "disk MB",
            "serving RSS MB",
            "dense index",
            "dense p50/p95 ms",
            "BM25 p50/p95 ms",
            "hybrid p50/p95 ms",
            "dense recall@10",
            "searchable after ms (BM25/dense)",
            "hybrid p99 ms idle / during ingest",
            "peer: bm25s rebuild",
        ],
        rows,
        notes,
    )
    write_plot(
        "scale",
        "Query latency by collection size (p50)",
        [
            Panel(
                f"{n:,} chunks",
                "ms per query",
                [Bar(mode, [out[mode]["p50"]]) for mode in ("dense", "bm25", "hybrid")]
                + [Bar("hybrid during ingest", [out["during_ingest"]["p50"]])]
                + [
                    Bar(f"LanceDB {mode}", [lance_measured[n][mode]["p50"]], peer=True)
                    for mode in ("dense", "bm25", "hybrid")
                    if n in lance_measured
                ],
            )
            for n, out, _ in measured
        ],
        env,
    )
    print(f"wrote {RESULTS / 'scale.md'}")


if __name__ == "__main__":
    main()
