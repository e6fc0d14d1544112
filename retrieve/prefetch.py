"""Conversation-aware retrieval with prefetch.

A follow-up turn ("and what about its side effects?") is retrieved with two queries,
fused: the new question, and a *context query* made of the previous question plus the
salient terms of the previous answer. The context query is fully known as soon as an
answer is finished, so ``Prefetcher.prefetch`` runs it in the background while the
answer streams out; the next turn finds it in the result cache and only the new
question is retrieved fresh. Hits are counted in the cache's stats.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from ragline.retrieve.cache import cache_key
from ragline.retrieve.fusion import reciprocal_rank_fusion
from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import RetrievalRequest, RetrievalResult, StageTimings

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]{2,}|\d[\d.,%]*")
_STOP = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "but",
        "not",
        "you",
        "all",
        "any",
        "can",
        "had",
        "her",
        "was",
        "one",
        "our",
        "out",
        "day",
        "get",
        "has",
        "him",
        "his",
        "how",
        "man",
        "new",
        "now",
        "old",
        "see",
        "two",
        "way",
        "who",
        "boy",
        "did",
        "its",
        "let",
        "put",
        "say",
        "she",
        "too",
        "use",
        "that",
        "with",
        "have",
        "this",
        "will",
        "your",
        "from",
        "they",
        "know",
        "want",
        "been",
        "good",
        "much",
        "some",
        "time",
        "very",
        "when",
        "come",
        "here",
        "just",
        "like",
        "long",
        "make",
        "many",
        "more",
        "only",
        "over",
        "such",
        "take",
        "than",
        "them",
        "well",
        "were",
        "what",
        "which",
        "while",
        "would",
        "there",
        "their",
        "about",
        "after",
        "also",
        "because",
        "could",
        "does",
        "into",
        "most",
        "other",
        "should",
        "these",
        "those",
        "through",
        "between",
        "based",
        "according",
        "answer",
        "question",
        "yes",
    ]
)
CONTEXT_WEIGHT = 0.5  # the new question leads; the conversation context supports


def salient_terms(text: str, limit: int = 8) -> list[str]:
    """Entity-like and content words of a text, most frequent first, capitalised first."""
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


def context_query(previous_question: str, previous_answer: str) -> str:
    terms = [
        t for t in salient_terms(previous_answer) if t.lower() not in previous_question.lower()
    ]
    return " ".join([previous_question, *terms]).strip()


class Prefetcher:
    def __init__(self, retriever: Retriever, workers: int = 1) -> None:
        self.retriever = retriever
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prefetch")
        self._prefetched: set[str] = set()
        self._lock = threading.Lock()

    def _context_request(self, base: RetrievalRequest, query: str) -> RetrievalRequest:
        return replace(base, query=query, compress=False, use_cache=True)

    def _key(self, request: RetrievalRequest) -> str:
        collection = self.retriever.collection
        return cache_key(
            collection.name,
            collection.collection_id,
            collection.generation,
            request.query,
            request.cache_params(),
        )

    def prefetch(
        self, question: str, answer: str, base: RetrievalRequest | None = None
    ) -> Future[RetrievalResult]:
        """Retrieve the next turn's context query in the background."""
        request = self._context_request(
            base or RetrievalRequest(question), context_query(question, answer)
        )
        with self._lock:
            self._prefetched.add(self._key(request))
        self.retriever.cache.stats.prefetched += 1
        return self._pool.submit(self.retriever.run, request)

    def run_turn(
        self, request: RetrievalRequest, previous: tuple[str, str] | None
    ) -> RetrievalResult:
        """Retrieve for a turn; with a previous (question, answer), fuse in the context query."""
        if previous is None:
            return self.retriever.run(request)
        timings = StageTimings()
        context_request = self._context_request(request, context_query(*previous))
        with self._lock:
            was_prefetched = self._key(context_request) in self._prefetched
        with timings.measure("context_retrieval"):
            context = self.retriever.run(context_request)
        if context.cache_hit and was_prefetched:
            self.retriever.cache.stats.prefetch_hits += 1
        with timings.measure("question_retrieval"):
            main = self.retriever.run(replace(request, compress=False))
        timings.stages.update({f"question.{k}": v for k, v in main.timings.stages.items()})
        fused = reciprocal_rank_fusion(
            [[p.chunk_id for p in main.passages], [p.chunk_id for p in context.passages]],
            [1.0, CONTEXT_WEIGHT],
        )
        by_id = {p.chunk_id: p for p in [*context.passages, *main.passages]}
        top_k = request.top_k or self.retriever.settings.retrieval.top_k
        passages = [by_id[chunk_id] for chunk_id, _ in fused[:top_k]]
        compressed = None
        compress = (
            request.compress
            if request.compress is not None
            else self.retriever.settings.compression.enabled
        )
        if compress:
            with timings.measure("compress"):
                compressed = self.retriever.compressor.run(
                    self.retriever.queries.encode(request.query), passages, request.token_budget
                )
        return RetrievalResult(
            request.query, passages, timings, main.cache_hit, compressed, main.collection_generation
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
