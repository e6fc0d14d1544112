"""Retrieval evaluation on BEIR-format data, and sweeps over chunking and rerank depth.

Each chunking configuration and embedding runtime gets its own collection
(``beir-<dataset>-c<size>-o<overlap>-<runtime>``), kept between runs: a run on another
runtime indexes again rather than scoring its queries against another runtime's stored
vectors; embeddings are cached by text so overlapping configurations reuse
them. Chunk rankings are turned into document rankings (first occurrence wins), then
scored with nDCG@10, recall@100 and MRR@10 against the qrels; per-query latency of the
whole query path is recorded for p50/p95.
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ragline.evaluation.beir import BeirDataset
from ragline.evaluation.metrics import mrr_at_k, ndcg_at_k, percentile, recall_at_k
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.embed_cache import CachingEmbedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.retrieve.dense import QueryEncoder
from ragline.retrieve.retriever import Reranker, Retriever
from ragline.retrieve.types import Mode, RetrievalRequest
from ragline.settings import Settings


@dataclass(slots=True, frozen=True)
class EvalConfig:
    chunk_size: int
    overlap: int
    mode: Mode
    rerank_depth: int  # 0 = no reranking

    @property
    def label(self) -> str:
        rerank = f"+rerank@{self.rerank_depth}" if self.rerank_depth else ""
        return f"{self.mode}{rerank} c{self.chunk_size}/o{self.overlap}"


@dataclass(slots=True)
class EvalRow:
    config: EvalConfig
    ndcg10: float
    recall100: float
    mrr10: float
    p50_ms: float
    p95_ms: float
    queries: int
    rerank_p50_ms: float = 0.0  # the rerank stage alone; 0: no reranking


def parse_sweep(specs: Sequence[str]) -> dict[str, list[int]]:
    """``["chunk_size=128,256", "rerank_depth=0,20"]`` -> {"chunk_size": [128, 256], ...}"""
    grid: dict[str, list[int]] = {}
    for spec in specs:
        for part in spec.replace(";", " ").split():
            name, _, values = part.partition("=")
            if name not in ("chunk_size", "overlap", "rerank_depth") or not values:
                raise ValueError(
                    f"bad sweep term {part!r}: use chunk_size|overlap|rerank_depth=N,M"
                )
            grid[name] = [int(v) for v in values.split(",") if v.strip()]
    return grid


def beir_documents(dataset: BeirDataset) -> list[ParsedDocument]:
    """Corpus records as parsed documents: the title is the heading of the text."""
    documents = []
    for doc in dataset.corpus.values():
        title = doc.title.strip()
        elements = [Element(title, "Title")] if title else []
        elements.append(Element(doc.text, "NarrativeText", headings=(title,) if title else ()))
        digest = hashlib.sha256(f"{title}\x00{doc.text}".encode()).hexdigest()
        documents.append(
            ParsedDocument(
                source=f"beir:{doc.doc_id}",
                content_hash=digest,
                size_bytes=len(doc.text),
                file_type="BEIR",
                elements=elements,
            )
        )
    return documents


def eval_collection_name(dataset: str, size: int, overlap: int, vectors_id: str) -> str:
    """The collection ``ragline eval`` keeps for a dataset, chunking and embedding runtime
    with its export (``Embedder.vectors_id``: a new int8 recipe or library upgrade makes
    vectors close to the stored ones, not equal, so it indexes again)."""
    return f"beir-{dataset}-c{size}-o{overlap}-{vectors_id}"


class Evaluator:
    def __init__(
        self,
        settings: Settings,
        dataset: BeirDataset,
        dataset_name: str,
        reranker_factory: Callable[[], Reranker] | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.dataset = dataset
        self.dataset_name = dataset_name
        self.reranker_factory = reranker_factory
        self._reranker: Reranker | None = None
        self.log = log
        # Indexing goes through a persistent embedding cache; queries through the plain
        # model with no query cache, so latency includes embedding every query.
        exports = settings.storage.export_dir
        self.embedder = CachingEmbedder(
            settings.embedding, settings.storage.data_dir / "cache" / "embeddings.sqlite", exports
        )
        self.query_embedder = Embedder(settings.embedding, exports)

    def configs(self, grid: dict[str, list[int]], modes: Sequence[Mode]) -> list[EvalConfig]:
        sizes = grid.get("chunk_size", [self.settings.chunking.size])
        overlaps = grid.get("overlap", [self.settings.chunking.overlap])
        depths = grid.get("rerank_depth", [0])
        configs = []
        for size, overlap, mode, depth in itertools.product(sizes, overlaps, modes, depths):
            if overlap < size:
                configs.append(EvalConfig(size, overlap, mode, depth))
        return configs

    def collection_for(self, size: int, overlap: int) -> Collection:
        settings = self.settings.model_copy(deep=True)
        settings.chunking.size, settings.chunking.overlap = size, overlap
        name = eval_collection_name(self.dataset_name, size, overlap, self.embedder.vectors_id)
        collection = Collection.open(
            settings.storage.collections_dir, name, settings.index, create=True
        )
        docs, _ = collection.docstore.counts()
        if docs < len(self.dataset.corpus):
            self.log(f"indexing {len(self.dataset.corpus)} documents into {name} ...")
            started = time.perf_counter()
            report = IngestPipeline(settings, collection, embedder=self.embedder).ingest_documents(
                beir_documents(self.dataset)
            )
            self.log(
                f"  {report.chunks_embedded} chunks in {time.perf_counter() - started:.0f}s "
                f"(embedding cache: {self.embedder.hits} hits, {self.embedder.misses} misses)"
            )
        return collection

    def reranker(self) -> Reranker | None:
        if self._reranker is None and self.reranker_factory is not None:
            self._reranker = self.reranker_factory()
        return self._reranker

    def run(self, configs: Sequence[EvalConfig], k: int = 100) -> list[EvalRow]:
        rows: list[EvalRow] = []
        for (size, overlap), group in itertools.groupby(
            sorted(configs, key=lambda c: (c.chunk_size, c.overlap)),
            key=lambda c: (c.chunk_size, c.overlap),
        ):
            collection = self.collection_for(size, overlap)
            settings = self.settings.model_copy(deep=True)
            settings.retrieval.dense_k = settings.retrieval.bm25_k = k
            retriever = Retriever(
                settings,
                collection,
                self.query_embedder,
                reranker=self.reranker(),
                query_encoder=QueryEncoder(self.query_embedder, cache_size=0),
            )
            for config in group:
                rows.append(self._evaluate(retriever, config, k))
                row = rows[-1]
                self.log(
                    f"{config.label:32} nDCG@10 {row.ndcg10:.4f}  recall@100 "
                    f"{row.recall100:.4f}  p50 {row.p50_ms:.1f} ms  p95 {row.p95_ms:.1f} ms"
                )
            collection.close()
        return rows

    def _evaluate(self, retriever: Retriever, config: EvalConfig, k: int) -> EvalRow:
        ndcg, recall, mrr, latency, reranking = [], [], [], [], []
        if config.rerank_depth and retriever.reranker is None:
            raise ValueError("rerank_depth > 0 needs a reranker")
        retriever.collection.repair()  # a lexical index for a collection made before one
        for query in itertools.islice(self.dataset.queries.values(), 3):  # warm-up, untimed
            retriever.run(
                RetrievalRequest(
                    query,
                    mode=config.mode,
                    use_cache=False,
                    compress=False,
                    rerank=config.rerank_depth > 0,
                )
            )
        for query_id, query in self.dataset.queries.items():
            request = RetrievalRequest(
                query,
                top_k=k,
                mode=config.mode,
                rerank=config.rerank_depth > 0,
                rerank_depth=config.rerank_depth or None,
                compress=False,
                use_cache=False,
            )
            started = time.perf_counter()
            result = retriever.run(request)
            latency.append((time.perf_counter() - started) * 1e3)
            reranking.append(result.timings.stages.get("rerank", 0.0))
            ranking = list(dict.fromkeys(p.source.removeprefix("beir:") for p in result.passages))
            relevant = self.dataset.qrels[query_id]
            ndcg.append(ndcg_at_k(ranking, relevant))
            recall.append(recall_at_k(ranking, relevant, 100))
            mrr.append(mrr_at_k(ranking, relevant))
        return EvalRow(
            config,
            statistics.fmean(ndcg),
            statistics.fmean(recall),
            statistics.fmean(mrr),
            percentile(latency, 50),
            percentile(latency, 95),
            len(latency),
            percentile(reranking, 50) if config.rerank_depth else 0.0,
        )
