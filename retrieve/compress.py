"""Extractive context compression to a token budget.

Sentences of the retrieved passages are scored by cosine similarity to the question
(same embedding model as retrieval); sentences under ``min_relevance`` are dropped,
near-duplicates across passages (cosine above ``redundancy_threshold``) are dropped,
and the most relevant rest is kept up to the budget, printed in passage order. When
nothing passes the threshold the context is empty: better no context than noise.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ragline.ingest.chunk import split_sentences
from ragline.ingest.embed import Embedder
from ragline.ingest.tokens import TokenCounter
from ragline.retrieve.types import CompressedContext, Passage
from ragline.settings import CompressionSettings

_SENTENCE_CACHE_SIZE = 50_000


@dataclass(slots=True)
class _Sentence:
    passage: int  # index into the passages list
    order: int  # position inside its passage
    text: str
    tokens: int


class ContextCompressor:
    def __init__(
        self, settings: CompressionSettings, embedder: Embedder, tokens: TokenCounter
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.tokens = tokens
        # Popular passages come back query after query: keep their sentence vectors.
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _sentence_vectors(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            fresh = self.embedder.encode(missing)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    self._vectors[text] = vector
                while len(self._vectors) > _SENTENCE_CACHE_SIZE:
                    self._vectors.popitem(last=False)
        with self._lock:
            found = {t: self._vectors.get(t) for t in texts}
        if any(v is None for v in found.values()):  # evicted meanwhile: compute directly
            return self.embedder.encode(texts)
        return np.stack([found[t] for t in texts])  # type: ignore[misc]

    def run(
        self,
        query_vector: np.ndarray,
        passages: list[Passage],
        token_budget: int | None = None,
    ) -> CompressedContext:
        budget = token_budget or self.settings.token_budget
        texts_per_passage = [split_sentences(p.text) for p in passages]
        flat = [text for texts in texts_per_passage for text in texts]
        counts = self.tokens.count(flat)
        sentences: list[_Sentence] = []
        for p_index, texts in enumerate(texts_per_passage):
            for order, text in enumerate(texts):
                sentences.append(_Sentence(p_index, order, text, counts[len(sentences)]))
        tokens_in = sum(s.tokens for s in sentences)
        if not sentences:
            return CompressedContext([], [], 0, 0)

        vectors = self._sentence_vectors([s.text for s in sentences])
        relevance = vectors @ np.asarray(query_vector, dtype=np.float32).reshape(-1)
        kept: list[int] = []
        used = 0
        for index in np.argsort(-relevance, kind="stable"):
            if relevance[index] < self.settings.min_relevance:
                break
            sentence = sentences[index]
            if used + sentence.tokens > budget:
                continue
            if kept and float(np.max(vectors[kept] @ vectors[index])) >= (
                self.settings.redundancy_threshold
            ):
                continue
            kept.append(int(index))
            used += sentence.tokens

        by_passage: dict[int, list[_Sentence]] = {}
        for index in sorted(kept, key=lambda i: (sentences[i].passage, sentences[i].order)):
            by_passage.setdefault(sentences[index].passage, []).append(sentences[index])
        return CompressedContext(
            passages=[passages[p].chunk_id for p in sorted(by_passage)],
            snippets=[" ".join(s.text for s in by_passage[p]) for p in sorted(by_passage)],
            tokens_in=tokens_in,
            tokens_out=used,
        )
