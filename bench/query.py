"""Query latency: ragline's query path vs LlamaIndex's retriever and a plain
sentence-transformers + FAISS loop.

    python -m bench.query [--collection NAME] [--queries N] [--repeats R] [--quick]

The collection: the full SciFact collection `ragline eval` builds for the embedding runtime
in use (beir-scifact-c256-o32-<runtime>) when it exists; otherwise one the benchmark
builds from the first --corpus-docs SciFact abstracts (bench-scifact<N>-c256-o32;
embeddings go through the same cache `ragline eval` uses). Queries: the SciFact test
queries. All systems run in this process, over the same chunks and the same vectors
(LlamaIndex gets ragline's stored vectors, so nothing is embedded twice), one query at a
time, top 10, interleaved query by query; every figure is a median of R repeats (min-max)
of the per-repeat p50/p95.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import (
    SHARED_DATA,
    Bar,
    Panel,
    environment,
    ratio_spread,
    speed_ratios,
    spread,
    write_plot,
    write_table,
)
from bench.peers import llamaindex
from bench.peers.plain import searcher
from ragline.evaluation.beir import BeirDataset, load_beir
from ragline.evaluation.evaluate import beir_documents, eval_collection_name
from ragline.evaluation.metrics import percentile
from ragline.ingest.collection import Collection
from ragline.ingest.embed_cache import CachingEmbedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.retrieve.dense import QueryEncoder
from ragline.retrieve.rerank import CrossEncoderReranker
from ragline.retrieve.types import Mode, RetrievalRequest
from ragline.service.collections import CollectionService
from ragline.service.components import Components, RerankerUnavailable
from ragline.settings import Settings, load_settings

DEFAULT_DATA = SHARED_DATA / "beir" / "scifact"
CHUNK_SIZE, OVERLAP = 256, 32  # as `ragline eval` builds its SciFact collection
PLAIN = "plain encode + FAISS (floor)"
LLAMA_FAISS = "LlamaIndex retriever, FAISS store (peer)"
LLAMA_DEFAULT = "LlamaIndex retriever, default in-memory store"


def interleaved_latencies(
    configs: list[tuple[str, Callable[[str], object]]], queries: list[str], seed: int = 0
) -> dict[str, list[float]]:
    """Milliseconds per query for every configuration, interleaved query by query: each
    query runs through all configurations in a fresh seeded random order, so that load
    from outside the benchmark falls on every configuration alike and no configuration
    always runs right after the same one (a rotation would keep each one's predecessor,
    and a heavy predecessor, such as the reranker, leaves the CPU's caches and thread
    pools in a state the next one pays for)."""
    rng = random.Random(seed)
    out: dict[str, list[float]] = {name: [] for name, _ in configs}
    for query in queries:
        for name, run in rng.sample(configs, len(configs)):
            started = time.perf_counter()
            run(query)
            out[name].append((time.perf_counter() - started) * 1e3)
    return out


def open_or_build(settings: Settings, name: str, data: BeirDataset, docs: int) -> Collection:
    """The named collection; ``auto``: ragline eval's full SciFact collection if it
    exists, else one over the first ``docs`` abstracts, built (or completed) here."""
    collections = CollectionService(Components(settings))
    if name != "auto":
        return collections.open(name)
    vectors_id = collections.components.embedder.vectors_id
    built_by_eval = eval_collection_name("scifact", CHUNK_SIZE, OVERLAP, vectors_id)
    if built_by_eval in collections.names():
        collection = collections.open(built_by_eval)
        if collection.docstore.counts()[0] > 0:
            return collection
        collection.close()
    name = f"bench-scifact{docs}-c{CHUNK_SIZE}-o{OVERLAP}"
    local = settings.model_copy(deep=True)
    local.chunking.size, local.chunking.overlap = CHUNK_SIZE, OVERLAP
    collection = collections.open(name, create=True)
    subset = BeirDataset(dict(list(data.corpus.items())[:docs]), {}, {})
    if collection.docstore.counts()[0] < len(subset.corpus):
        print(f"building collection {name} from {len(subset.corpus)} SciFact abstracts ...")
        started = time.perf_counter()
        embedder = CachingEmbedder(
            local.embedding, local.storage.data_dir / "cache" / "embeddings.sqlite"
        )
        report = IngestPipeline(local, collection, embedder=embedder).ingest_documents(
            beir_documents(subset)
        )
        print(
            f"  {report.chunks_embedded} chunks in {time.perf_counter() - started:.0f}s "
            f"(embedding cache: {embedder.hits} hits, {embedder.misses} misses)"
        )
    return collection


def stored_chunks(collection: Collection) -> tuple[list[str], np.ndarray]:
    """Every chunk's text and stored vector, in chunk-id order."""
    chunks = list(collection.docstore.iter_chunks())
    ids, vectors = [], []
    for batch_ids, batch in collection.docstore.iter_vectors(collection.index.dim):
        ids.append(batch_ids)
        vectors.append(batch)
    if [c.chunk_id for c in chunks] != np.concatenate(ids).tolist():
        raise RuntimeError("docstore chunks and vectors disagree")
    return [c.text for c in chunks], np.concatenate(vectors)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--collection", default="auto")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--corpus-docs", type=int, default=1000, help="abstracts, if built")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--depth", type=int, default=20, help="rerank depth (0: no rerank row)")
    parser.add_argument("--quick", action="store_true", help="200 abstracts, 30 queries, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.corpus_docs, args.queries, args.repeats = 200, 30, 2

    settings = load_settings()
    data = load_beir(args.data, "test")
    collection = open_or_build(settings, args.collection, data, args.corpus_docs)
    queries = list(data.queries.values())[: args.queries]
    components = Components(settings)
    embedder = components.embedder
    model = embedder.model
    reranker: CrossEncoderReranker | None = None
    rerank_note = f"Reranker {settings.rerank.model}, depth {args.depth}."
    if args.depth:
        try:
            reranker = components.reranker()
            reranker.score("warm up", ["warm up"])
        except (RerankerUnavailable, OSError) as exc:
            reranker = None
            rerank_note = f"No rerank row: {exc}."
    retriever = components.retriever(
        collection, reranker=reranker, query_encoder=QueryEncoder(embedder, cache_size=0)
    )
    collection.repair()  # a lexical index for a collection made before one

    def ragline(mode: Mode, depth: int) -> Callable[[str], object]:
        def run(query: str) -> object:
            return retriever.run(
                RetrievalRequest(
                    query,
                    top_k=args.top_k,
                    mode=mode,
                    rerank=depth > 0,
                    rerank_depth=depth or None,
                    compress=False,
                    use_cache=False,
                )
            )

        return run

    configs: list[tuple[str, Callable[[str], object]]] = [
        (PLAIN, searcher(model, collection.index, args.top_k))
    ]
    peer_version = llamaindex.version()
    if peer_version is not None:
        texts, vectors = stored_chunks(collection)
        peer = llamaindex.LlamaIndexPeer(
            embedder.model_path, CHUNK_SIZE, OVERLAP, settings.embedding.batch_size
        )
        configs.append((LLAMA_FAISS, peer.retriever(texts, vectors, args.top_k)))
        configs.append(
            (LLAMA_DEFAULT, peer.retriever(texts, vectors, args.top_k, faiss_store=False))
        )
    else:
        print(llamaindex.MISSING)
    configs += [
        ("ragline dense", ragline("dense", 0)),
        ("ragline hybrid (dense + BM25, RRF)", ragline("hybrid", 0)),
    ]
    if reranker is not None:
        configs.append((f"ragline hybrid + rerank@{args.depth}", ragline("hybrid", args.depth)))

    for _, run in configs:  # warm-up, untimed
        for query in queries[:3]:
            run(query)
    p50: dict[str, list[float]] = {name: [] for name, _ in configs}
    p95: dict[str, list[float]] = {name: [] for name, _ in configs}
    for repeat in range(args.repeats):
        for name, lat in interleaved_latencies(configs, queries, repeat).items():
            p50[name].append(statistics.median(lat))
            p95[name].append(percentile(lat, 95))
        print(f"  repeat {repeat + 1}/{args.repeats} done", flush=True)

    def versus(name: str, peer_name: str) -> str:
        if peer_name not in p50 or name == peer_name:
            return "-"
        return ratio_spread(speed_ratios(p50[name], p50[peer_name], higher_is_faster=False))

    rows = [
        [name, spread(p50[name]), spread(p95[name]), versus(name, LLAMA_FAISS), versus(name, PLAIN)]
        for name, _ in configs
    ]
    env = environment(
        ["faiss-cpu", "bm25s", "sentence-transformers", "torch", llamaindex.PACKAGES[0]]
    )
    counts = collection.docstore.counts()
    notes = [
        "Environment: " + env,
        f"Collection {collection.name}: {counts[0]} SciFact abstracts, {counts[1]} chunks "
        f"({collection.index.kind} index); {len(queries)} SciFact test queries one at a time; "
        f"top {args.top_k} in every system (LlamaIndex: similarity_top_k={args.top_k}, no LLM); "
        f"query embedding included everywhere, no query cache. {rerank_note}",
        "Speed ratios from the same repeat, other's p50 ÷ this p50 (>1: this row faster). "
        f"Median (min-max) over {args.repeats} repeats of each repeat's p50/p95; within a "
        "repeat every query runs through all configurations in a fresh random order.",
    ]
    if peer_version is None:
        notes.append(llamaindex.MISSING + ".")
    write_table(
        "query",
        "Query latency (one query at a time) vs LlamaIndex",
        ["configuration", "p50 ms", "p95 ms", "speed vs LlamaIndex (FAISS)", "speed vs plain"],
        rows,
        notes,
    )
    write_plot(
        "query",
        "Query latency (bars: median; whiskers: min-max over repeats)",
        [
            Panel(
                "p50 latency",
                "ms per query (lower is faster)",
                [Bar(name, p50[name], peer=not name.startswith("ragline")) for name, _ in configs],
            ),
            Panel(
                "p95 latency",
                "ms per query (lower is faster)",
                [Bar(name, p95[name], peer=not name.startswith("ragline")) for name, _ in configs],
            ),
        ],
        env,
    )
    collection.close()


if __name__ == "__main__":
    main()
