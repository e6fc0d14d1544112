"""Open collections, each with its retriever and prefetcher, shared by all requests.

A collection is opened on first use and kept; dropping it (here or by another process)
is noticed by the docstore file's identity, so a re-created collection is reopened.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ingest.collection import Collection, CollectionNotFound, validate_name
from ingest.embed import Embedder
from ragline.settings import Settings
from retrieve.cache import ResultCache
from retrieve.dense import QueryEncoder
from retrieve.prefetch import Prefetcher
from retrieve.retriever import Reranker, Retriever
from retrieve.types import RetrievalRequest, RetrievalResult, StageTimings


@dataclass(slots=True)
class OpenCollection:
    collection: Collection
    retriever: Retriever
    prefetcher: Prefetcher
    inode: tuple[int, int]

    @property
    def empty(self) -> bool:
        """Never written to: no vectors, not even a dimension to search with."""
        return self.collection.config is None

    def retrieve(
        self, request: RetrievalRequest, previous: tuple[str, str] | None = None
    ) -> RetrievalResult:
        """A turn's retrieval (blocking: call from a worker thread)."""
        if self.empty:
            return RetrievalResult(request.query, [], StageTimings())
        return self.prefetcher.run_turn(request, previous)

    def prefetch(self, question: str, answer: str, request: RetrievalRequest) -> None:
        if not self.empty:
            self.prefetcher.prefetch(question, answer, request)

    def close(self) -> None:
        self.prefetcher.close()
        self.collection.close()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class CollectionRegistry:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        cache: ResultCache,
        reranker: Reranker | None,
    ) -> None:
        self.settings = settings
        self.root = settings.storage.collections_dir
        self.embedder = embedder
        self.cache = cache
        self.reranker = reranker
        # One query-embedding LRU for every collection: they share the embedding model.
        self.queries = QueryEncoder(embedder, settings.retrieval.query_cache_size)
        self._open: dict[str, OpenCollection] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return Collection.names(self.root)

    def exists(self, name: str) -> bool:
        return name in self.names()

    def get(self, name: str) -> OpenCollection:
        """The open collection; raises CollectionNotFound (or CollectionError for a bad name)."""
        docstore = self.root / validate_name(name) / Collection.DOCSTORE  # no path tricks
        with self._lock:
            current = self._open.get(name)
            identity = _identity(docstore)
            if current is not None and current.inode == identity:
                return current
            if current is not None:  # dropped (and maybe re-created) behind our back
                del self._open[name]
                current.close()
            collection = Collection.open(self.root, name, self.settings.index)
            identity = _identity(docstore)
            if identity is None:
                raise CollectionNotFound(f"collection {name!r} does not exist")
            retriever = Retriever(
                self.settings,
                collection,
                self.embedder,
                reranker=self.reranker,
                cache=self.cache,
                query_encoder=self.queries,
            )
            opened = OpenCollection(collection, retriever, Prefetcher(retriever), identity)
            self._open[name] = opened
            return opened

    def forget(self, name: str) -> None:
        with self._lock:
            current = self._open.pop(name, None)
        if current is not None:
            current.close()

    def drop(self, name: str) -> None:
        self.forget(name)
        Collection.drop(self.root, name)
        self.cache.invalidate(name)

    def close(self) -> None:
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        for item in opened:
            item.close()
