from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from ragline.evaluation.beir import load_beir
from ragline.evaluation.evaluate import beir_documents
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.retrieve.bm25 import BM25Index
from ragline.retrieve.cache import InProcessCache
from ragline.retrieve.fusion import reciprocal_rank_fusion
from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import MetadataFilter, RetrievalRequest
from ragline.settings import Settings


def test_reciprocal_rank_fusion_orders_by_weighted_reciprocal_rank() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], [1.0, 1.0], k=60)
    assert [doc for doc, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    only_second = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], [0.0, 1.0], k=60)
    assert [doc for doc, _ in only_second] == [3, 1]


def test_bm25_ranks_matching_text_and_respects_allowed_ids() -> None:
    index = BM25Index(
        [7, 8, 9],
        ["Aspirin reduces the risk of stroke.", "Statins lower cholesterol.", "Stroke care units"],
    )
    ranked = index.search("stroke prevention with aspirin", 3)
    assert ranked[0][0] == 7 and {cid for cid, _ in ranked} == {7, 9}
    assert [cid for cid, _ in index.search("stroke", 3, allowed={9})] == [9]
    assert index.search("zebra", 3) == []


def _doc(source: str, text: str, title: str = "") -> ParsedDocument:
    elements = [Element(title, "Title")] if title else []
    elements.append(Element(text, "NarrativeText", headings=(title,) if title else ()))
    return ParsedDocument(source, f"hash:{source}:{text}", len(text), "TXT", elements=elements)


@pytest.fixture(scope="module")
def scifact_sample(shared_data: Path) -> tuple[list[ParsedDocument], dict[str, str], dict]:
    data = load_beir(shared_data / "beir" / "scifact", "test")
    queries = dict(itertools.islice(data.queries.items(), 25))
    wanted = {doc for q in queries for doc in data.qrels[q]}
    docs = [d for d in beir_documents(data) if d.source.removeprefix("beir:") in wanted]
    fillers = [d for d in beir_documents(data) if d.source.removeprefix("beir:") not in wanted]
    return docs + fillers[:300], queries, data.qrels


@pytest.fixture
def retriever(
    settings: Settings, embedder: Embedder, scifact_sample: tuple[list[ParsedDocument], dict, dict]
) -> Retriever:
    docs, _, _ = scifact_sample
    collection = Collection.open(settings.storage.collections_dir, "r", settings.index, create=True)
    IngestPipeline(settings, collection, embedder=embedder).ingest_documents(docs)
    return Retriever(settings, collection, embedder)


@pytest.mark.slow
def test_hybrid_retrieval_finds_relevant_documents(
    retriever: Retriever, scifact_sample: tuple[list[ParsedDocument], dict, dict]
) -> None:
    _, queries, qrels = scifact_sample
    hits = {"dense": 0, "bm25": 0, "hybrid": 0}
    for mode, (query_id, query) in itertools.product(hits, queries.items()):
        result = retriever.run(RetrievalRequest(query, top_k=5, mode=mode, compress=False))  # type: ignore[arg-type]
        sources = {p.source.removeprefix("beir:") for p in result.passages}
        hits[mode] += bool(sources & set(qrels[query_id]))
        if mode == "hybrid":
            assert {"dense", "bm25", "fusion"} <= set(result.timings.stages)
    assert all(count >= 15 for count in hits.values()), hits
    assert hits["hybrid"] >= min(hits["dense"], hits["bm25"])


def test_filters_cache_and_invalidation(
    settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    collection = Collection.open(settings.storage.collections_dir, "f", settings.index, create=True)
    pipeline = IngestPipeline(settings, collection, embedder=embedder)
    pipeline.ingest_documents(
        [
            _doc("a.txt", "Tidal power plants convert the energy of ocean tides into electricity."),
            _doc("b.txt", "Solar panels convert sunlight into electricity on rooftops."),
            _doc("c.txt", "The recipe needs two eggs, flour and a pinch of salt."),
        ]
    )
    cache = InProcessCache(settings.cache)
    retriever = Retriever(settings, collection, embedder, cache=cache)
    request = RetrievalRequest("How is electricity made from tides?", top_k=2, compress=False)

    first = retriever.run(request)
    assert first.passages[0].source == "a.txt" and not first.cache_hit
    again = retriever.run(request)
    assert again.cache_hit and [p.chunk_id for p in again.passages] == [
        p.chunk_id for p in first.passages
    ]
    assert cache.stats.hits == 1

    only_b = retriever.run(
        RetrievalRequest(request.query, top_k=2, filters=MetadataFilter(sources=["b.*"]))
    )
    assert [p.source for p in only_b.passages] == ["b.txt"]

    # A re-ingest changes the collection: the cached answer must not be served.
    pipeline.ingest_documents([_doc("a.txt", "Tidal lagoons store sea water behind walls.")])
    after = retriever.run(request)
    assert not after.cache_hit
    assert "lagoons" in after.passages[0].text or after.passages[0].source != "a.txt"


def test_compression_respects_budget_and_empties_on_irrelevant(
    settings: Settings, embedder: Embedder
) -> None:
    collection = Collection.open(settings.storage.collections_dir, "z", settings.index, create=True)
    text = " ".join(
        [
            "Vitamin D deficiency is linked to weaker bones in older adults.",
            "The study enrolled 400 participants over two years.",
            "Vitamin D deficiency is linked to weaker bones in older adults!",
            "Participants received either supplements or placebo.",
        ]
        * 3
    )
    IngestPipeline(settings, collection, embedder=embedder).ingest_documents([_doc("v.txt", text)])
    retriever = Retriever(settings, collection, embedder)
    result = retriever.run(
        RetrievalRequest("Does vitamin D deficiency weaken bones?", top_k=3, token_budget=40)
    )
    assert result.context is not None
    assert 0 < result.context.tokens_out <= 40 < result.context.tokens_in
    assert "Vitamin D deficiency" in result.context.text
    assert result.context.text.count("weaker bones") == 1, "near-duplicate sentences dropped"
    unrelated = retriever.run(RetrievalRequest("quantum chromodynamics of gluons", top_k=3))
    assert unrelated.context is not None and unrelated.context.text == ""


class _PrefersWord:
    """A reranker that scores passages by whether they contain one word: the fusion logic
    under test only sees scores, so a transparent scorer shows what it does with them."""

    def __init__(self, word: str) -> None:
        self.word = word
        self.calls = 0
        self.scored: list[int] = []  # texts per call

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.scored.append(len(texts))
        return np.array([float(self.word in t) for t in texts], dtype=np.float32)


def test_rerank_replace_and_rrf_fusion(settings: Settings, embedder: Embedder) -> None:
    root = settings.storage.collections_dir
    collection = Collection.open(root, "rr", settings.index, create=True)
    IngestPipeline(settings, collection, embedder=embedder).ingest_documents(
        [
            _doc("tides.txt", "Tidal power plants turn ocean tides into electricity."),
            _doc("waves.txt", "Wave energy converters make electricity from ocean waves."),
            _doc("wind.txt", "Wind turbines make electricity from wind near the ocean."),
            _doc("bread.txt", "Bread needs flour, water, salt and yeast."),
        ]
    )
    query = "electricity from ocean tides"
    plain = Retriever(settings, collection, embedder).run(
        RetrievalRequest(query, top_k=4, compress=False, use_cache=False)
    )
    assert plain.passages[0].source == "tides.txt"

    reranker = _PrefersWord("turbines")
    settings.rerank.fusion = "replace"
    replaced = Retriever(settings, collection, embedder, reranker=reranker).run(
        RetrievalRequest(query, top_k=3, rerank=True, compress=False, use_cache=False)
    )
    assert reranker.calls == 1
    assert replaced.passages[0].source == "wind.txt"  # the reranker alone decides
    assert replaced.passages[0].rerank_score == 1.0 and "rerank" in replaced.timings.stages

    settings.rerank.fusion = "rrf"
    fused = Retriever(settings, collection, embedder, reranker=reranker).run(
        RetrievalRequest(query, top_k=4, rerank=True, compress=False, use_cache=False)
    )
    order = [p.source for p in fused.passages]
    # Fused: wind.txt rises above its retrieval rank, tides.txt (retrieval's first) stays
    # ahead of the documents both rankings put low.
    assert order.index("wind.txt") < [p.source for p in plain.passages].index("wind.txt")
    assert order.index("tides.txt") < order.index("bread.txt")
    scores = [p.score for p in fused.passages]
    assert scores == sorted(scores, reverse=True)

    skipped = Retriever(settings, collection, embedder, reranker=reranker).run(
        RetrievalRequest(query, top_k=3, rerank=False, compress=False, use_cache=False)
    )
    assert reranker.calls == 2  # not called when rerank is off
    assert [p.chunk_id for p in skipped.passages] == [p.chunk_id for p in plain.passages[:3]]

    # top_k beyond the rerank depth: only the top `depth` are scored and reordered, the
    # rest follow in retrieval order, unscored.
    settings.rerank.fusion = "replace"
    second = _PrefersWord(plain.passages[1].text)
    shallow = Retriever(settings, collection, embedder, reranker=second).run(
        RetrievalRequest(
            query, top_k=4, rerank=True, rerank_depth=2, compress=False, use_cache=False
        )
    )
    assert second.scored == [2]
    ids = [p.chunk_id for p in plain.passages]
    assert [p.chunk_id for p in shallow.passages] == [ids[1], ids[0], *ids[2:4]]
    assert [p.rerank_score is None for p in shallow.passages] == [False, False, True, True]


def test_empty_collection_retrieves_nothing(settings: Settings, embedder: Embedder) -> None:
    root = settings.storage.collections_dir
    collection = Collection.open(root, "empty", settings.index, create=True)
    for mode in ("dense", "bm25", "hybrid"):
        result = Retriever(settings, collection, embedder).run(
            RetrievalRequest("anything at all?", mode=mode, use_cache=False)  # type: ignore[arg-type]
        )
        assert result.passages == []
        assert result.context is None or result.context.tokens_out == 0
