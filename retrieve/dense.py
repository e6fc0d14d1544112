"""Query embedding with an in-memory LRU, and dense search over a collection."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.retrieve.cache import normalise_query


class QueryEncoder:
    """Embeds queries once: repeated questions skip the model entirely."""

    def __init__(self, embedder: Embedder, cache_size: int) -> None:
        self.embedder = embedder
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def encode(self, query: str) -> np.ndarray:
        key = normalise_query(query)
        with self._lock:
            vector = self._cache.get(key)
            if vector is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return vector
        vector = self.embedder.encode([query])[0]
        with self._lock:
            self.misses += 1
            self._cache[key] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return vector


def dense_search(
    collection: Collection, query_vector: np.ndarray, k: int, allowed: set[int] | None = None
) -> list[tuple[int, float]]:
    if (allowed is not None and not allowed) or collection.config is None:
        return []  # nothing to search (a collection with no documents yet has no dimension)
    allowed_ids = np.fromiter(allowed, dtype=np.int64) if allowed is not None else None
    scores, ids = collection.search_dense(query_vector, k, allowed_ids)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
