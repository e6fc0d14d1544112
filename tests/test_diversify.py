from __future__ import annotations

import random

from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.retrieve.diversify import diversify
from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import RetrievalRequest
from ragline.settings import Settings

DOCS = {1: "a", 2: "a", 3: "a", 4: "b", 5: "c"}


def _brute_force(
    ranked: list[tuple[int, float]], documents: dict[int, str], penalty: float, limit: int
) -> list[tuple[int, float]]:
    left, chosen, taken = list(enumerate(ranked)), [], {}
    while left and len(chosen) < limit:
        best = max(
            left,
            key=lambda item: (
                item[1][1] * (1 - penalty) ** taken.get(documents[item[1][0]], 0),
                -item[0],
            ),
        )
        left.remove(best)
        chosen.append(best[1])
        taken[documents[best[1][0]]] = taken.get(documents[best[1][0]], 0) + 1
    return chosen


def test_penalty_orders_by_document_unless_one_is_clearly_best() -> None:
    ranked = [(1, 1.0), (2, 0.9), (3, 0.8), (4, 0.5), (5, 0.3)]
    assert diversify(ranked, DOCS, 0.0, 5) == ranked
    # Penalty 1: each document's best first, then the seconds, in score order.
    assert [i for i, _ in diversify(ranked, DOCS, 1.0, 5)] == [1, 4, 5, 2, 3]
    # Penalty 0.3: doc a's second passage (0.9 * 0.7 = 0.63) still beats b's best (0.5),
    # its third (0.8 * 0.49 = 0.39) does not; scores are returned unpenalised.
    assert diversify(ranked, DOCS, 0.3, 5) == [(1, 1.0), (2, 0.9), (4, 0.5), (3, 0.8), (5, 0.3)]
    assert [i for i, _ in diversify(ranked, DOCS, 0.3, 2)] == [1, 2]


def test_heap_selection_matches_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 30)
        scores = sorted((rng.random() for _ in range(n)), reverse=True)
        ranked = list(enumerate(scores))
        documents = {i: rng.choice("abcdef") for i in range(n)}
        penalty = rng.choice([0.2, 0.5, 0.9, 1.0])
        limit = rng.randint(1, n)
        assert diversify(ranked, documents, penalty, limit) == _brute_force(
            ranked, documents, penalty, limit
        )


def test_non_positive_scores_use_ranks() -> None:
    """Cross-encoder logits can be negative: the ranks stand in for them."""
    ranked = [(1, 2.0), (2, -1.0), (3, -2.0), (4, -5.0)]
    assert [i for i, _ in diversify(ranked, DOCS, 1.0, 4)] == [1, 4, 2, 3]


def _doc(source: str, paragraphs: list[str]) -> ParsedDocument:
    elements = [Element(p, "NarrativeText") for p in paragraphs]
    return ParsedDocument(source, f"h:{source}", 1, "TXT", elements=elements)


def test_retriever_returns_distinct_documents_first(settings: Settings, embedder: Embedder) -> None:
    """One long document about tides (many chunks) and three short ones: with the penalty
    the top 4 hold every document; without, the long one fills it."""
    long = [
        f"Section {i}: tidal power plants turn ocean tides into electricity, and "
        f"site {i} measured the tidal range, turbine output and grid feed-in over a year. "
        + " ".join(f"Observation {i}.{j} on tidal turbines and tides." for j in range(12))
        for i in range(6)
    ]
    settings.chunking.size, settings.chunking.overlap = 64, 0
    collection = Collection.open(settings.storage.collections_dir, "d", settings.index, create=True)
    IngestPipeline(settings, collection, embedder=embedder).ingest_documents(
        [
            _doc("long.txt", long),
            _doc("lagoon.txt", ["Tidal lagoons hold sea water behind walls to make electricity."]),
            _doc("waves.txt", ["Wave energy converters make electricity from ocean waves."]),
            _doc("wind.txt", ["Offshore wind turbines make electricity near the ocean."]),
        ]
    )
    request = RetrievalRequest(
        "tidal turbine output and tidal range measured at each site",
        top_k=4,
        compress=False,
        use_cache=False,
    )
    settings.retrieval.same_document_penalty = 0.0
    plain = Retriever(settings, collection, embedder).run(request)
    assert [p.source for p in plain.passages].count("long.txt") >= 3
    settings.retrieval.same_document_penalty = 1.0
    diverse = Retriever(settings, collection, embedder).run(request)
    assert sorted(p.source for p in diverse.passages) == [
        "lagoon.txt",
        "long.txt",
        "waves.txt",
        "wind.txt",
    ]
    assert diverse.passages[0].chunk_id == plain.passages[0].chunk_id, "the best stays first"
