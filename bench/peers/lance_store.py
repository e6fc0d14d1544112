"""LanceDB as a peer for large collections: the embedded store a user moving from another
vector store would otherwise pick (columnar files on disk, IVF-PQ vector index, its own
full-text index, hybrid search with reciprocal rank fusion).

Fed the same Parquet rows as ``ragline import`` and queried with the same embedder
(ragline's, so only the store differs), with LanceDB's defaults where a user would leave
them: ``create_index(metric="cosine")`` (IVF-PQ), ``create_fts_index("text")`` (native,
stemmed, stop words removed), hybrid = vector + full text fused by its RRF reranker; vector
searches refine PQ candidates by their full vectors (``refine_factor``, as its docs advise).

Only importable in the benchmark's environment (scripts/bench-env.sh → .venv-bench).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ragline.evaluation.metrics import percentile

TABLE = "scale"
# PQ codes alone rank poorly (recall@10 0.37 at 10k rows here); LanceDB's docs advise
# re-ranking candidates by their full vectors, which this does for 10x the limit.
REFINE = 10


def version() -> str | None:
    try:
        return metadata.version("lancedb")
    except metadata.PackageNotFoundError:
        return None


def _batches(parquet: Path, dim: int) -> Any:
    """The Parquet rows with the embedding as a fixed-size list (a vector column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [("id", pa.string()), ("text", pa.string()), ("vector", pa.list_(pa.float32(), dim))]
    )

    def rows() -> Any:
        for batch in pq.ParquetFile(parquet).iter_batches(batch_size=50_000):
            flat = batch.column("embedding").flatten()
            vectors = pa.FixedSizeListArray.from_arrays(flat, dim)
            yield pa.RecordBatch.from_arrays(
                [batch.column("id"), batch.column("text"), vectors], schema=schema
            )

    return pa.RecordBatchReader.from_batches(schema, rows())


def build(parquet: Path, folder: Path, dim: int) -> dict[str, float]:
    """Table, vector index and full-text index, each timed."""
    import lancedb

    db = lancedb.connect(str(folder))
    started = time.perf_counter()
    table = db.create_table(TABLE, data=_batches(parquet, dim), mode="overwrite")
    loaded = time.perf_counter()
    table.create_index(metric="cosine", vector_column_name="vector")
    indexed = time.perf_counter()
    table.create_fts_index("text", replace=True)
    done = time.perf_counter()
    return {
        "load_s": loaded - started,
        "vector_index_s": indexed - loaded,
        "fts_index_s": done - indexed,
        "build_s": done - started,
    }


def probe(
    folder: Path,
    queries: Sequence[str],
    encode: Callable[[list[str]], np.ndarray],
    rss_mb: Callable[[], float],
) -> dict[str, Any]:
    """The same measurements as ragline's probe, on the LanceDB table."""
    import lancedb

    table = lancedb.connect(str(folder)).open_table(TABLE)

    def run(query: str, mode: str) -> float:
        started = time.perf_counter()
        if mode == "bm25":
            table.search(query, query_type="fts").limit(10).to_arrow()
        else:
            vector = encode([query])[0]
            if mode == "dense":
                table.search(vector).refine_factor(REFINE).limit(10).to_arrow()
            else:
                hybrid = table.search(query_type="hybrid").vector(vector).text(query)
                hybrid.refine_factor(REFINE).limit(10).to_arrow()
        return (time.perf_counter() - started) * 1e3

    for query in queries[:5]:
        run(query, "hybrid")
    out: dict[str, Any] = {"rss_mb": rss_mb()}
    for mode in ("dense", "bm25", "hybrid"):
        latencies = [run(q, mode) for q in queries]
        out[mode] = {
            "p50": statistics.median(latencies),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
        }

    vectors = encode(list(queries[:100]))
    recalls = []
    for vector in vectors:
        exact = set(
            table.search(vector).bypass_vector_index().limit(10).to_arrow()["id"].to_pylist()
        )
        found = set(
            table.search(vector).refine_factor(REFINE).limit(10).to_arrow()["id"].to_pylist()
        )
        recalls.append(len(exact & found) / 10)
    out["recall10"] = statistics.mean(recalls)

    # One new row: how long until dense and full-text search find it (no index rebuild
    # asked for; LanceDB searches unindexed rows with a flat scan).
    marker = "zyxwvut quasiparticle marker"
    vector = vectors[0] / np.linalg.norm(vectors[0])
    table.add([{"id": "fresh#1", "text": marker, "vector": vector.tolist()}])
    committed = time.perf_counter()
    found_fts = found_dense = None
    while (found_fts is None or found_dense is None) and time.perf_counter() - committed < 30:
        now = time.perf_counter() - committed
        hits = table.search(marker, query_type="fts").limit(1).to_arrow()["id"].to_pylist()
        if found_fts is None and hits == ["fresh#1"]:
            found_fts = now
        hits = table.search(vector).limit(1).to_arrow()["id"].to_pylist()
        if found_dense is None and hits == ["fresh#1"]:
            found_dense = now
    out["searchable_s"] = {"bm25": found_fts, "dense": found_dense}

    # Hybrid latency while another writer appends rows without pause.
    rng = np.random.default_rng(1)
    stop = threading.Event()
    commits = [0]
    dim = len(vector)

    def ingest() -> None:
        writer = lancedb.connect(str(folder)).open_table(TABLE)
        while not stop.is_set():
            block = rng.normal(size=(64, dim)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            n0 = commits[0] * 64
            writer.add(
                [
                    {
                        "id": f"load#{n0 + i}",
                        "text": f"{queries[(n0 + i) % len(queries)]} load",
                        "vector": v.tolist(),
                    }
                    for i, v in enumerate(block)
                ]
            )
            commits[0] += 1

    thread = threading.Thread(target=ingest, daemon=True)
    thread.start()
    busy = [run(q, "hybrid") for q in queries]
    stop.set()
    thread.join()
    out["during_ingest"] = {
        "p50": statistics.median(busy),
        "p99": percentile(busy, 99),
        "max": max(busy),
        "commits": commits[0],
    }
    return out
