"""Query latency: ragline's query path vs a plain sentence-transformers + FAISS loop.

    python -m bench.query [--collection NAME] [--queries N] [--repeats R]

Defaults to the SciFact collection that `ragline eval` builds (beir-scifact-c256-o32)
and the SciFact test queries. All configurations run in this process, on the same
collection and queries; every figure is a median of R repeats (min-max).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.common import environment, spread, write_table
from ingest.collection import Collection
from ingest.embed import Embedder
from ragline.beir import load_beir
from ragline.settings import PROJECT_ROOT, load_settings
from retrieve.dense import QueryEncoder
from retrieve.evaluate import percentile
from retrieve.rerank import CrossEncoderReranker
from retrieve.retriever import Retriever
from retrieve.types import Mode, RetrievalRequest

DEFAULT_DATA = (
    Path(os.environ.get("RAGLINE_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
    / "beir"
    / "scifact"
)


def _latencies(run: Callable[[str], object], queries: list[str]) -> list[float]:
    out = []
    for query in queries:
        started = time.perf_counter()
        run(query)
        out.append((time.perf_counter() - started) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collection", default="beir-scifact-c256-o32")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--depth", type=int, default=20)
    args = parser.parse_args()

    settings = load_settings()
    collection = Collection.open(settings.storage.collections_dir, args.collection, settings.index)
    queries = list(load_beir(args.data, "test").queries.values())[: args.queries]
    embedder = Embedder(settings.embedding)
    model = embedder.model
    index = collection.index
    reranker = CrossEncoderReranker(settings.rerank, settings.models_dir)
    retriever = Retriever(
        settings,
        collection,
        embedder,
        reranker=reranker,
        query_encoder=QueryEncoder(embedder, cache_size=0),
    )
    retriever.bm25()
    reranker.score("warm up", ["warm up"])

    def plain(query: str) -> object:  # the floor: encode + FAISS, nothing else
        vector = model.encode([query], normalize_embeddings=True, convert_to_numpy=True)
        return index.search(vector, 10)

    def ragline(mode: Mode, depth: int) -> Callable[[str], object]:
        def run(query: str) -> object:
            return retriever.run(
                RetrievalRequest(
                    query,
                    top_k=10,
                    mode=mode,
                    rerank=depth > 0,
                    rerank_depth=depth or None,
                    compress=False,
                    use_cache=False,
                )
            )

        return run

    configs: list[tuple[str, Callable[[str], object]]] = [
        ("plain encode + FAISS (peer)", plain),
        ("ragline dense", ragline("dense", 0)),
        ("ragline hybrid (dense + BM25, RRF)", ragline("hybrid", 0)),
        (f"ragline hybrid + rerank@{args.depth}", ragline("hybrid", args.depth)),
    ]
    p50: dict[str, list[float]] = {name: [] for name, _ in configs}
    p95: dict[str, list[float]] = {name: [] for name, _ in configs}
    for _ in range(args.repeats):
        for name, run in configs:
            lat = _latencies(run, queries)
            p50[name].append(statistics.median(lat))
            p95[name].append(percentile(lat, 95))
    floor = p50[configs[0][0]]
    rows = [
        [
            name,
            spread(p50[name]),
            spread(p95[name]),
            spread([a / b for a, b in zip(p50[name], floor, strict=True)]),
        ]
        for name, _ in configs
    ]
    write_table(
        "query",
        "Query latency (one query at a time)",
        ["configuration", "p50 ms", "p95 ms", "p50 / plain FAISS"],
        rows,
        [
            "Environment: " + environment(["faiss-cpu", "bm25s", "sentence-transformers", "torch"]),
            f"Collection {args.collection}: {collection.docstore.counts()[1]} chunks "
            f"({collection.index.kind}); {len(queries)} SciFact test queries; top 10; "
            f"reranker {settings.rerank.model}; median (min-max) of {args.repeats} repeats.",
        ],
    )


if __name__ == "__main__":
    main()
