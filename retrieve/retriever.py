"""The query path as one component: ``Retriever.run(RetrievalRequest) -> RetrievalResult``.

Stages (each timed): cache lookup → embed query → dense (FAISS) and BM25 candidates,
restricted by metadata filters → reciprocal rank fusion → diversity by document
(``retrieve.diversify``) → dedup of repeated text (the same paragraph in two documents of
the collection) → cross-encoder rerank of the top ``rerank_depth`` (diversified again) →
top-k → context compression.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol

import numpy as np

from ragline.ingest.collection import Collection
from ragline.ingest.docstore import StoredChunk
from ragline.ingest.embed import Embedder
from ragline.ingest.tokens import HFTokenCounter
from ragline.retrieve.cache import InProcessCache, ResultCache, cache_key
from ragline.retrieve.compress import ContextCompressor
from ragline.retrieve.dense import QueryEncoder, dense_search
from ragline.retrieve.diversify import diversify
from ragline.retrieve.fusion import reciprocal_rank_fusion
from ragline.retrieve.types import (
    CompressedContext,
    Passage,
    RetrievalRequest,
    RetrievalResult,
    StageTimings,
)
from ragline.settings import Settings


class Reranker(Protocol):
    def score(self, query: str, texts: list[str]) -> np.ndarray: ...


class Retriever:
    def __init__(
        self,
        settings: Settings,
        collection: Collection,
        embedder: Embedder,
        reranker: Reranker | None = None,
        cache: ResultCache | None = None,
        query_encoder: QueryEncoder | None = None,
    ) -> None:
        self.settings = settings
        self.collection = collection
        self.embedder = embedder
        self.reranker = reranker
        self.cache = cache if cache is not None else InProcessCache(settings.cache)
        self.queries = query_encoder or QueryEncoder(embedder, settings.retrieval.query_cache_size)
        self.compressor = ContextCompressor(
            settings.compression, embedder, HFTokenCounter(embedder.model_path)
        )

    # -- the query path -----------------------------------------------------------------

    def run(self, request: RetrievalRequest) -> RetrievalResult:
        timings = StageTimings()
        generation = self.collection.generation
        if not request.use_cache:
            return self._retrieve(request, timings, generation)
        key = cache_key(
            self.collection.name,
            self.collection.collection_id,
            generation,
            request.query,
            request.cache_params(),
        )
        with timings.measure("cache"):
            cached = self.cache.get(key)
        if cached is not None:
            return _result_from_cache(request.query, cached, timings, generation)

        result = self._retrieve(request, timings, generation)
        # The lexical index lags its docstore commit by a moment while a writer works:
        # a result that may miss that commit's chunks is not kept under its generation.
        if request.mode == "dense" or self.collection.lexical.generation >= generation:
            self.cache.set(key, _result_to_cache(result))
        return result

    def _retrieve(
        self, request: RetrievalRequest, timings: StageTimings, generation: int
    ) -> RetrievalResult:
        config = self.settings.retrieval
        top_k = request.top_k or config.top_k
        use_rerank = self.wants_rerank(request)
        # The cross-encoder scores the top ``depth`` candidates only; when top_k asks for
        # more, the rest follow in retrieval order (as BEIR's rerank evaluations do).
        depth = request.rerank_depth or self.settings.rerank.depth
        pool = max(depth, top_k) if use_rerank else top_k

        with timings.measure("filter"):
            allowed = self._allowed(request)
        dense: list[tuple[int, float]] = []
        bm25: list[tuple[int, float]] = []
        if request.mode != "bm25":
            with timings.measure("embed_query"):
                query_vector = self.queries.encode(request.query)
            with timings.measure("dense"):
                k = max(config.dense_k, pool)
                dense = dense_search(self.collection, query_vector, k, allowed)
        if request.mode != "dense" and config.bm25_k > 0:
            with timings.measure("bm25"):
                k = max(config.bm25_k, pool)
                bm25 = self.collection.lexical.search(request.query, k, allowed)
        with timings.measure("fusion"):
            fused = reciprocal_rank_fusion(
                [[cid for cid, _ in dense], [cid for cid, _ in bm25]],
                [config.dense_weight, config.bm25_weight],
                config.rrf_k,
            )
            candidates = self._diversify(fused, pool)
            stored = self.collection.docstore.chunks_by_id([cid for cid, _ in candidates])
            passages = _passages(candidates, stored, dict(dense), dict(bm25))
        if use_rerank and passages:
            with timings.measure("rerank"):
                passages = self.rerank(request.query, passages, depth)
        passages = passages[:top_k]

        context: CompressedContext | None = None
        compress = (
            request.compress
            if request.compress is not None
            else (self.settings.compression.enabled)
        )
        if compress:
            with timings.measure("compress"):
                query_vector = self.queries.encode(request.query)
                context = self.compressor.run(query_vector, passages, request.token_budget)
        return RetrievalResult(request.query, passages, timings, False, context, generation)

    def _diversify(self, fused: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
        penalty = self.settings.retrieval.same_document_penalty
        if penalty <= 0 or not fused:
            return fused[:limit]
        documents = self.collection.docstore.document_ids([cid for cid, _ in fused])
        return diversify(fused, documents, penalty, limit, self.settings.retrieval.rrf_k)

    def wants_rerank(self, request: RetrievalRequest) -> bool:
        return (
            self.reranker is not None
            and (request.rerank if request.rerank is not None else self.settings.rerank.enabled)
            and (request.rerank_depth is None or request.rerank_depth > 0)
        )

    def rerank(self, query: str, passages: list[Passage], depth: int) -> list[Passage]:
        """The top ``depth`` passages reordered by the cross-encoder (see ``rerank.fusion``),
        the rest after them as they were; diversified by document again."""
        assert self.reranker is not None
        head, tail = passages[:depth], passages[depth:]
        scores = self.reranker.score(query, [p.text for p in head])
        return self.diversify_passages(self._apply_rerank(head, [float(s) for s in scores]) + tail)

    def diversify_passages(self, passages: list[Passage]) -> list[Passage]:
        """Passages (best first) reordered for diversity by document, as after fusion."""
        penalty = self.settings.retrieval.same_document_penalty
        if penalty <= 0:
            return passages
        by_id = {p.chunk_id: p for p in passages}
        ranked = [(p.chunk_id, p.score) for p in passages]
        documents = {p.chunk_id: p.source for p in passages}
        chosen = diversify(ranked, documents, penalty, len(ranked), self.settings.retrieval.rrf_k)
        return [by_id[chunk_id] for chunk_id, _ in chosen]

    def _apply_rerank(self, passages: list[Passage], scores: list[float]) -> list[Passage]:
        """Order candidates by the cross-encoder alone, or by its rank fused with the
        retrieval rank (``rerank.fusion``); ``score`` becomes the deciding score."""
        for passage, score in zip(passages, scores, strict=True):
            passage.rerank_score = score
        config = self.settings.rerank
        if config.fusion == "replace":
            for passage in passages:
                passage.score = passage.rerank_score or 0.0
            return sorted(passages, key=lambda p: -p.score)
        by_rerank = sorted(passages, key=lambda p: -(p.rerank_score or 0.0))
        fused = reciprocal_rank_fusion(
            [[p.chunk_id for p in passages], [p.chunk_id for p in by_rerank]],
            [1.0, config.weight],
            self.settings.retrieval.rrf_k,
        )
        by_id = {p.chunk_id: p for p in passages}
        ordered = []
        for chunk_id, score in fused:
            by_id[chunk_id].score = score
            ordered.append(by_id[chunk_id])
        return ordered

    def _allowed(self, request: RetrievalRequest) -> set[int] | None:
        filters = request.filters
        if filters.is_empty():
            return None
        return self.collection.docstore.chunk_ids_where(
            filters.sources,
            filters.categories,
            filters.file_types,
            filters.ingested_after,
            filters.ingested_before,
            names=filters.names,
        )


def _passages(
    candidates: list[tuple[int, float]],
    stored: dict[int, StoredChunk],
    dense: dict[int, float],
    bm25: dict[int, float],
) -> list[Passage]:
    """Candidates as passages, dropping chunks whose text repeats an earlier one
    (the same paragraph in two documents)."""
    seen: set[str] = set()
    passages = []
    for chunk_id, score in candidates:
        chunk = stored.get(chunk_id)
        if chunk is None or chunk.content_hash in seen:
            continue
        seen.add(chunk.content_hash)
        passages.append(
            Passage(
                chunk_id=chunk_id,
                text=chunk.text,
                source=chunk.source,
                score=score,
                position=chunk.position,
                category=chunk.category,
                page=chunk.page,
                sheet=chunk.sheet,
                headings=chunk.headings,
                dense_score=dense.get(chunk_id),
                bm25_score=bm25.get(chunk_id),
            )
        )
    return passages


def _result_to_cache(result: RetrievalResult) -> dict[str, Any]:
    return {
        "passages": [asdict(p) for p in result.passages],
        "context": asdict(result.context) if result.context is not None else None,
    }


def _result_from_cache(
    query: str, cached: dict[str, Any], timings: StageTimings, generation: int
) -> RetrievalResult:
    passages = [
        Passage(**{**p, "headings": tuple(p.get("headings", ()))}) for p in cached["passages"]
    ]
    context = CompressedContext(**cached["context"]) if cached.get("context") else None
    return RetrievalResult(query, passages, timings, True, context, generation)
