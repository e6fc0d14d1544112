"""Queries for follow-up turns, built from the conversation without a model.

"And what about the second one?" retrieves nothing useful alone. The conversation says
what it is about: the earlier user turns (the most recent counts most) and the previous
answer. ``context_query`` condenses them, deterministically and in microseconds: the
previous user turn in full, older user turns down to their salient terms, and the names
the previous answer brought in. A rewrite by the generation model would read better, but
the embedded 135M model paraphrases poorly and costs a generation per turn.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import Passage, RetrievalRequest, RetrievalResult, StageTimings

Turn = tuple[str, str]  # (role, content): "user", "assistant" or "system"

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]{2,}|\d[\d.,%]*")
_STOP = frozenset(
    """
    the and for are but not you all any can had her was one our out day get has him his
    how man new now old see two way who boy did its let put say she too use that with have
    this will your from they know want been good much some time very when come here just
    like long make many more only over such take than them well were what which while
    would there their about after also because could does into most other should these
    those through between based according answer question yes tell know true said says
    sources source does whether anything something please thanks thank
    """.split()  # noqa: SIM905 - a word list reads better as text
)
USER_TURNS = 3  # the last question and up to two before it
OLDER_TURN_TERMS = 4  # an older user turn contributes its salient terms only
ANSWER_TERMS = 4


def salient_terms(text: str, limit: int = 8) -> list[str]:
    """Entity-like and content words of a text, capitalised and numeric ones first, then
    the most frequent, without repeats."""
    words = [w for w in _WORD.findall(text) if w.lower() not in _STOP]
    counts = Counter(words)
    ranked = sorted(counts, key=lambda w: (-(w[0].isupper() or w[0].isdigit()), -counts[w]))
    seen: set[str] = set()
    terms = []
    for word in ranked:
        if word.lower() not in seen:
            seen.add(word.lower())
            terms.append(word)
    return terms[:limit]


def answer_names(answer: str) -> list[str]:
    """The names an answer brings in (capitalised or numeric salient terms): "Metformin"
    in "Metformin is the first-line drug" is what "its side effects" refers to. Its
    plain words would pull the follow-up back to the passage the answer came from."""
    names = [t for t in salient_terms(answer, 2 * ANSWER_TERMS) if t[0].isupper() or t[0].isdigit()]
    return names[:ANSWER_TERMS]


def _new_terms(terms: Sequence[str], present: str) -> list[str]:
    """``terms`` whose words are not all in ``present`` already."""
    have = {w.lower() for w in _WORD.findall(present)}
    return [t for t in terms if not {w.lower() for w in _WORD.findall(t)} <= have]


def context_query(history: Sequence[Turn]) -> str:
    """What the conversation so far is about: the last user turn in full, up to two
    earlier ones as salient terms, and the names the last answer brought in."""
    users = [text for role, text in history if role == "user" and text.strip()]
    recent = users[-(USER_TURNS - 1) :] if USER_TURNS > 1 else []
    if not recent:
        return ""
    parts = [recent[-1].strip()]
    for older in reversed(recent[:-1]):
        parts += _new_terms(salient_terms(older, OLDER_TURN_TERMS), " ".join(parts))
    answer = next((text for role, text in reversed(history) if role == "assistant"), "")
    parts += _new_terms(answer_names(answer), " ".join(parts))
    return " ".join(parts).strip()


def rewrite_query(question: str, history: Sequence[Turn]) -> str:
    """The question followed by the conversation's context terms it lacks: one query
    that stands on its own."""
    context = context_query(history)
    if not context:
        return question
    return " ".join([question.strip(), *_new_terms(context.split(), question)])


CANDIDATES = 20  # each query's top passages that compete for a follow-up's top k
# The rewrite's cosines count this much: it must match clearly better than the question
# itself to lead, so a question that changes the subject keeps its own passages.
REWRITE_WEIGHT = 0.9


class ConversationRetriever:
    """A turn's retrieval. A first turn is retrieved as it is. A follow-up is retrieved
    twice, as asked and as rewritten with the conversation (``rewrite_query``), and each
    candidate is scored by its embedding's cosine to the closer of the two queries: a
    follow-up that leans on the conversation ("is it safe for them?") is served by the
    rewrite, one that changes the subject by its own words, which the rewrite would only
    dilute. Reciprocal rank fusion of the two lists was measured and dropped: it lifts the
    passages both lists hold, which on an elliptical follow-up are the ones that match
    its few words without its subject (bench/results/multiturn.md)."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever

    def run_turn(self, request: RetrievalRequest, history: Sequence[Turn] = ()) -> RetrievalResult:
        rewrite = rewrite_query(request.query, history)
        if rewrite == request.query:
            return self.retriever.run(request)
        retriever, settings = self.retriever, self.retriever.settings
        timings = StageTimings()
        top_k = request.top_k or settings.retrieval.top_k
        inner = replace(request, top_k=max(CANDIDATES, 4 * top_k), compress=False, rerank=False)
        with timings.measure("question_retrieval"):
            asked = retriever.run(inner)
        with timings.measure("rewrite_retrieval"):
            rewritten = retriever.run(replace(inner, query=rewrite))
        with timings.measure("conversation_fusion"):
            passages = self._closer_query_scores(
                request.query, rewrite, [*asked.passages, *rewritten.passages]
            )
            passages = retriever.diversify_passages(passages)
        if retriever.wants_rerank(request) and passages:
            with timings.measure("rerank"):
                depth = request.rerank_depth or settings.rerank.depth
                passages = retriever.rerank(rewrite, passages, depth)
        passages = passages[:top_k]
        context = None
        compress = (
            request.compress if request.compress is not None else settings.compression.enabled
        )
        if compress:
            with timings.measure("compress"):
                vector = retriever.queries.encode(rewrite)
                context = retriever.compressor.run(vector, passages, request.token_budget)
        return RetrievalResult(
            request.query,
            passages,
            timings,
            asked.cache_hit and rewritten.cache_hit,
            context,
            asked.collection_generation,
            rewrite=rewrite,
        )

    def _closer_query_scores(
        self, question: str, rewrite: str, candidates: list[Passage]
    ) -> list[Passage]:
        """Unique candidates, best first, each scored by
        max(cos(question), REWRITE_WEIGHT * cos(rewrite))."""
        retriever = self.retriever
        unique = list({p.chunk_id: p for p in reversed(candidates)}.values())
        if not unique:
            return []
        vectors = retriever.collection.docstore.vectors(
            [p.chunk_id for p in unique], retriever.collection.index.dim
        )
        queries = np.stack(
            [
                retriever.queries.encode(question),
                REWRITE_WEIGHT * retriever.queries.encode(rewrite),
            ]
        )
        scored = []
        for passage in unique:
            vector = vectors.get(passage.chunk_id)
            if vector is None:
                continue  # deleted since it was retrieved
            passage.score = float(np.max(queries @ vector))
            scored.append(passage)
        return sorted(scored, key=lambda p: (-p.score, p.chunk_id))

    def relevance(self, result: RetrievalResult) -> float:
        """How close the best passage is: the highest cosine between the question (or its
        rewrite) and a returned passage; 0 without passages. Chat abstains below
        ``generation.abstain_below``."""
        retriever = self.retriever
        if not result.passages:
            return 0.0
        vectors = retriever.collection.docstore.vectors(
            [p.chunk_id for p in result.passages], retriever.collection.index.dim
        )
        if not vectors:
            return 0.0
        texts = [result.query] + ([result.rewrite] if result.rewrite else [])
        queries = np.stack([retriever.queries.encode(text) for text in texts])
        return float(np.max(np.stack(list(vectors.values())) @ queries.T))
