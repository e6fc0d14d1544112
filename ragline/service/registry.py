"""Open collections, each with its retriever, shared by all requests.

A collection is opened on first use and kept; dropping it (here or by another process)
is noticed by the docstore file's identity, so a re-created collection is reopened and
what the cache holds for the old one is dropped (cache keys carry the collection's id).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ragline.ingest.collection import Collection, CollectionNotFound, validate_name
from ragline.retrieve.cache import ResultCache
from ragline.retrieve.conversation import ConversationRetriever, Turn
from ragline.retrieve.dense import QueryEncoder
from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import RetrievalRequest, RetrievalResult, StageTimings
from ragline.service.collections import LOCK_WAIT_S, CollectionService

_DROP_SETTLE_S = 0.2


@dataclass(slots=True)
class OpenCollection:
    collection: Collection
    retriever: Retriever
    conversation: ConversationRetriever
    inode: tuple[int, int]

    @property
    def empty(self) -> bool:
        """Never written to: no vectors, not even a dimension to search with."""
        return self.collection.config is None

    def retrieve(self, request: RetrievalRequest, history: Sequence[Turn] = ()) -> RetrievalResult:
        """A turn's retrieval, with the conversation before it (blocking: call from a
        worker thread)."""
        with self._not_found_if_dropped():
            if self.empty:
                return RetrievalResult(request.query, [], StageTimings())
            return self.conversation.run_turn(request, history)

    def relevance(self, result: RetrievalResult) -> float:
        """The best cosine between the question (or its rewrite) and a passage."""
        with self._not_found_if_dropped():
            return 0.0 if self.empty else self.conversation.relevance(result)

    @contextmanager
    def _not_found_if_dropped(self) -> Iterator[None]:
        """Another process may drop the collection between ``get`` and a read (a new
        thread's SQLite connection then finds no file): that read's failure is a
        CollectionNotFound, not an internal error."""
        try:
            yield
        except Exception:
            if _identity(self.collection.path / Collection.DOCSTORE) != self.inode:
                name = self.collection.name
                raise CollectionNotFound(f"collection {name!r} was dropped meanwhile") from None
            raise

    def close(self) -> None:
        self.collection.close()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class CollectionRegistry:
    """Collections opened for reading, each with its retriever."""

    def __init__(self, collections: CollectionService, cache: ResultCache) -> None:
        self.collections = collections
        self.components = collections.components
        self.settings = collections.settings
        self.cache = cache
        # One query-embedding LRU for every collection: they share the embedding model.
        self.queries = QueryEncoder(
            self.components.embedder, self.settings.retrieval.query_cache_size
        )
        self._open: dict[str, OpenCollection] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> OpenCollection:
        """The open collection; raises CollectionNotFound (or CollectionError for a bad name)."""
        docstore = self.collections.root / validate_name(name) / Collection.DOCSTORE
        with self._lock:
            current = self._open.get(name)
            identity = _identity(docstore)
            if current is not None and current.inode == identity:
                return current
            if current is not None:  # dropped (and maybe re-created) behind our back
                del self._open[name]
                current.close()
                # Its entries are unreachable under the new id; free them now.
                self.cache.invalidate(name, current.collection.collection_id)
            collection = self._open_collection(name, docstore, identity)
            identity = _identity(docstore)
            if identity is None:
                collection.close()
                raise CollectionNotFound(f"collection {name!r} does not exist")
            retriever = self.components.retriever(
                collection, cache=self.cache, query_encoder=self.queries
            )
            opened = OpenCollection(
                collection, retriever, ConversationRetriever(retriever), identity
            )
            self._open[name] = opened
            return opened

    def _open_collection(
        self, name: str, docstore: Path, identity: tuple[int, int] | None
    ) -> Collection:
        """Open and repair; a collection another process is dropping meanwhile (SQLite
        then fails with "disk I/O error" as its files go) is not found, and one that is
        still there is opened again once."""
        for attempt in range(2):
            try:
                collection = self.collections.open(name)
                collection.repair()  # a crashed writer's lexical index; never a wait
                return collection
            except (sqlite3.Error, OSError):
                time.sleep(_DROP_SETTLE_S)  # a drop removes its files in milliseconds
                if _identity(docstore) != identity:
                    raise CollectionNotFound(f"collection {name!r} was dropped") from None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def forget(self, name: str) -> None:
        with self._lock:
            current = self._open.pop(name, None)
        if current is not None:
            current.close()

    def drop(self, name: str, wait_s: float | None = LOCK_WAIT_S) -> None:
        """Drop the collection (CollectionBusy while an ingestion writes it)."""
        self.forget(name)
        self.collections.drop(name, wait_s)

    def close(self) -> None:
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        for item in opened:
            item.close()
