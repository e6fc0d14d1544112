from __future__ import annotations

from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.retrieve.prefetch import Prefetcher, context_query, salient_terms
from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import RetrievalRequest
from ragline.settings import Settings


def _doc(source: str, text: str) -> ParsedDocument:
    return ParsedDocument(source, f"h:{text}", len(text), "TXT", [Element(text, "NarrativeText")])


def test_context_query_adds_the_answers_salient_terms() -> None:
    answer = "Metformin lowers glucose in Type 2 diabetes; Metformin is first-line therapy."
    assert salient_terms(answer)[0] == "Metformin"
    query = context_query("What treats diabetes?", answer)
    assert query.startswith("What treats diabetes?") and "Metformin" in query
    assert query.lower().count("diabetes") == 1


def test_prefetched_context_makes_the_next_turn_a_cache_hit(
    settings: Settings, embedder: Embedder
) -> None:
    collection = Collection.open(settings.storage.collections_dir, "p", settings.index, create=True)
    IngestPipeline(settings, collection, embedder=embedder).ingest_documents(
        [
            _doc("metformin.txt", "Metformin is the first-line drug for type 2 diabetes."),
            _doc("side.txt", "Metformin side effects include nausea and, rarely, lactic acidosis."),
            _doc("insulin.txt", "Insulin therapy is needed in type 1 diabetes."),
            _doc("other.txt", "The Eiffel tower is in Paris."),
        ]
    )
    retriever = Retriever(settings, collection, embedder)
    prefetcher = Prefetcher(retriever)
    first = RetrievalRequest("What is the first-line drug for type 2 diabetes?", top_k=2)
    turn1 = prefetcher.run_turn(first, None)
    assert turn1.passages[0].source == "metformin.txt"
    answer = "Metformin is the first-line drug for type 2 diabetes [1]."

    prefetcher.prefetch(first.query, answer, first).result(timeout=60)
    follow_up = RetrievalRequest("What are its side effects?", top_k=2)
    turn2 = prefetcher.run_turn(follow_up, (first.query, answer))
    stats = retriever.cache.stats
    assert (stats.prefetched, stats.prefetch_hits) == (1, 1)
    assert "side.txt" in [p.source for p in turn2.passages]
    assert {"context_retrieval", "question_retrieval"} <= set(turn2.timings.stages)

    # A turn whose context was never prefetched is not counted as a prefetch hit.
    prefetcher.run_turn(RetrievalRequest("And insulin?", top_k=2), ("Who built it?", "Eiffel"))
    assert stats.prefetch_hits == 1
    prefetcher.close()
