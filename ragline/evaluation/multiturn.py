"""A multi-turn retrieval set from single claims, and its scoring.

Each SciFact claim is split at its grammatical subject into an opening question about the
subject and an elliptical follow-up that refers back to it by pronoun:

    "ALDH1 expression is associated with poorer prognosis for breast cancer."
    user:      What is known about ALDH1 expression?
    assistant: (the first two sentences of the passage ragline retrieves for that)
    user:      Is it true that it is associated with poorer prognosis for breast cancer?

The judged documents of the claim are the follow-up's. The assistant turn stands in for
an answer drawn from turn one's retrieval (no judged text is used), so a follow-up is
retrieved with what a real conversation would hold at that point.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ragline.evaluation.metrics import mrr_at_k, passage_ndcg_at_k, recall_at_k
from ragline.ingest.chunk import split_sentences
from ragline.retrieve.conversation import Turn
from ragline.retrieve.types import RetrievalResult

_SUBJECTS = ("nsubj", "nsubjpass")


@dataclass(slots=True, frozen=True)
class Conversation:
    query_id: str
    claim: str
    opening: str  # the first user turn: about the claim's subject
    follow_up: str  # the last user turn: the rest of the claim, subject as a pronoun


def split_claim(query_id: str, claim: str, nlp: Any) -> Conversation | None:
    """The claim as (opening, follow-up), or None when it has no usable subject."""
    doc = nlp(claim.strip())
    roots = [t for t in doc if t.dep_ == "ROOT"]
    subject = next((t for r in roots for t in r.children if t.dep_ in _SUBJECTS), None)
    if subject is not None:
        span = list(subject.subtree)
        start, end = span[0].i, span[-1].i + 1
        plural = subject.tag_ in ("NNS", "NNPS")
    else:  # no verb-subject parse: the first noun phrase is what the claim is about
        chunk = next(iter(doc.noun_chunks), None)
        if chunk is None:
            return None
        start, end, plural = chunk.start, chunk.end, chunk.root.tag_ in ("NNS", "NNPS")
    topic = doc[start:end].text
    before, after = doc[:start].text, doc[end:].text.rstrip(" .")
    if len(topic.split()) < 1 or len(after.split()) < 3 or topic.lower() in ("it", "this"):
        return None
    pronoun = "they" if plural else "it"
    rest = " ".join(part for part in (before, pronoun, after) if part)
    return Conversation(
        query_id, claim, f"What is known about {topic}?", f"Is it true that {rest}?"
    )


def build_conversations(queries: dict[str, str], nlp: Any) -> list[Conversation]:
    found = (split_claim(query_id, text, nlp) for query_id, text in queries.items())
    return [conversation for conversation in found if conversation is not None]


def write_conversations(conversations: Iterable[Conversation], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for conversation in conversations:
            handle.write(json.dumps(asdict(conversation), ensure_ascii=False) + "\n")


def read_conversations(path: Path) -> list[Conversation]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Conversation(**json.loads(line)) for line in lines if line.strip()]


def proxy_answer(result: RetrievalResult, sentences: int = 2) -> str:
    """An extractive answer to turn one: the top passage's first sentences (without
    its heading line)."""
    if not result.passages:
        return "I could not find that in the knowledge base."
    body = result.passages[0].text.split("\n\n", 1)[-1]
    return " ".join(split_sentences(body)[:sentences])


def history(conversation: Conversation, answer: str | None) -> list[Turn]:
    turns: list[Turn] = [("user", conversation.opening)]
    if answer is not None:
        turns.append(("assistant", answer))
    return turns


@dataclass(slots=True)
class MultiTurnRow:
    label: str
    recall5: float
    ndcg10: float
    mrr10: float
    queries: int


def score_rankings(
    label: str,
    rankings: dict[str, list[str]],
    qrels: dict[str, dict[str, int]],
) -> MultiTurnRow:
    recall, ndcg, mrr = [], [], []
    for query_id, documents in rankings.items():
        relevant = qrels[query_id]
        recall.append(recall_at_k(documents, relevant, 5))
        ndcg.append(passage_ndcg_at_k(documents, relevant, 10))
        mrr.append(mrr_at_k(documents, relevant, 10))
    return MultiTurnRow(
        label,
        statistics.fmean(recall),
        statistics.fmean(ndcg),
        statistics.fmean(mrr),
        len(rankings),
    )


def documents_of(result: RetrievalResult, name: Callable[[str], str]) -> list[str]:
    return [name(p.source) for p in result.passages]
