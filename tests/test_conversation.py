from __future__ import annotations

import pytest

from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.retrieve.conversation import (
    ConversationRetriever,
    context_query,
    rewrite_query,
    salient_terms,
)
from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import RetrievalRequest
from ragline.settings import Settings


def test_salient_terms_put_entities_first() -> None:
    answer = "Metformin lowers glucose in Type 2 diabetes; Metformin is first-line therapy."
    assert salient_terms(answer)[0] == "Metformin"
    assert len(salient_terms(answer, 3)) == 3


def test_rewrite_weights_recent_turns_and_adds_the_answers_terms() -> None:
    history = [
        ("user", "Tell me about statins and muscle pain."),
        ("assistant", "Statins can cause myopathy."),
        ("user", "What is known about metformin in type 2 diabetes?"),
        ("assistant", "Metformin is the first-line drug; Lactic acidosis is rare."),
    ]
    context = context_query(history)
    # The most recent question in full, the older one by its terms, then the answer's.
    assert context.startswith("What is known about metformin in type 2 diabetes?")
    assert "statins" in context and "Tell me about" not in context
    assert "Lactic" in context and context.lower().count("metformin") == 1
    rewrite = rewrite_query("What are its side effects?", history)
    assert rewrite.startswith("What are its side effects? ") and "metformin" in rewrite
    assert rewrite_query("First question?", []) == "First question?"


def _doc(source: str, text: str) -> ParsedDocument:
    return ParsedDocument(source, f"h:{text}", len(text), "TXT", [Element(text, "NarrativeText")])


@pytest.fixture
def conversation(settings: Settings, embedder: Embedder) -> ConversationRetriever:
    collection = Collection.open(settings.storage.collections_dir, "c", settings.index, create=True)
    IngestPipeline(settings, collection, embedder=embedder).ingest_documents(
        [
            _doc("metformin.txt", "Metformin is the first-line drug for type 2 diabetes."),
            _doc("side.txt", "Metformin side effects include nausea and, rarely, lactic acidosis."),
            _doc("aspirin.txt", "Aspirin side effects include stomach bleeding and ulcers."),
            _doc("insulin.txt", "Insulin therapy is needed in type 1 diabetes."),
            _doc("eiffel.txt", "The Eiffel tower in Paris was built for the 1889 World's Fair."),
        ]
    )
    return ConversationRetriever(Retriever(settings, collection, embedder))


def test_follow_ups_retrieve_with_the_conversation(conversation: ConversationRetriever) -> None:
    history = [
        ("user", "What is the first-line drug for type 2 diabetes?"),
        ("assistant", "Metformin is the first-line drug for type 2 diabetes [1]."),
    ]
    question = RetrievalRequest("What are its side effects?", top_k=2, compress=False)
    alone = conversation.retriever.run(question)
    assert "aspirin.txt" in [p.source for p in alone.passages]  # whose side effects?
    turn = conversation.run_turn(question, history)
    assert {p.source for p in turn.passages} == {"side.txt", "metformin.txt"}
    assert turn.rewrite is not None and "Metformin" in turn.rewrite
    assert {"question_retrieval", "rewrite_retrieval", "conversation_fusion"} <= set(
        turn.timings.stages
    )
    # A question that changes the subject keeps its own answer: the rewrite only dilutes it.
    switch = conversation.run_turn(
        RetrievalRequest("When was the Eiffel tower in Paris built?", top_k=1), history
    )
    assert [p.source for p in switch.passages] == ["eiffel.txt"]
    # A first turn is retrieved as it is.
    first = conversation.run_turn(RetrievalRequest("insulin in type 1 diabetes", top_k=1))
    assert first.rewrite is None and first.passages[0].source == "insulin.txt"
