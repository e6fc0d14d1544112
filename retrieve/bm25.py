"""BM25 over a collection's chunks (bm25s, English stopwords and Snowball stemming)."""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import numpy as np
import Stemmer

_STEMMER = Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    tokens = bm25s.tokenize(
        list(texts), stopwords="en", stemmer=_STEMMER, show_progress=False, return_ids=False
    )
    return list(tokens)


class BM25Index:
    """Built in memory from (chunk id, text) pairs; rebuilt when the collection changes."""

    def __init__(self, chunk_ids: Sequence[int], texts: Sequence[str]) -> None:
        self.chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        self._position = {int(cid): i for i, cid in enumerate(self.chunk_ids)}
        self.model = bm25s.BM25()
        if len(texts):
            self.model.index(tokenize(texts), show_progress=False)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def search(
        self, query: str, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (chunk id, score) with score > 0, optionally only among ``allowed`` ids."""
        if not len(self) or k <= 0:
            return []
        mask = None
        if allowed is not None:
            mask = np.zeros(len(self), dtype=np.float32)
            for cid in allowed:
                if (index := self._position.get(cid)) is not None:
                    mask[index] = 1.0
        # Words the corpus never uses cannot score; bm25s wants them dropped.
        words = [[w for w in tokenize([query])[0] if w in self.model.vocab_dict]]
        if not words[0]:
            return []
        docs, scores = self.model.retrieve(
            words, k=min(k, len(self)), show_progress=False, weight_mask=mask
        )
        return [
            (int(self.chunk_ids[d]), float(s))
            for d, s in zip(docs[0], scores[0], strict=True)
            if s > 0
        ]
