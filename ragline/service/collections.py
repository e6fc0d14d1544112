"""Collection operations, one implementation for the CLI, the HTTP API and the benchmarks:
list, describe, ingest, find and delete documents, drop.

Writers take the collection's writer lock here (never in the callers), waiting at most
``wait_s`` before answering CollectionBusy; every change invalidates the result cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePath

from filelock import Timeout

from ragline.ingest.collection import (
    Collection,
    CollectionError,
    CollectionInfo,
    CollectionNotFound,
    validate_name,
)
from ragline.ingest.docstore import DocumentRecord
from ragline.ingest.pipeline import IngestPipeline, IngestReport, ProgressSink
from ragline.retrieve.cache import ResultCache
from ragline.service.components import Components

LOCK_WAIT_S = 10.0  # a delete waits this long for a running ingestion to finish


class CollectionBusy(CollectionError):
    """Another writer (an ingestion) holds the collection."""


class DocumentNotFound(CollectionError):
    pass


class AmbiguousDocument(CollectionError):
    """A file name that several documents of the collection share."""


class CollectionService:
    def __init__(self, components: Components, cache: ResultCache | None = None) -> None:
        self.components = components
        self.settings = components.settings
        self.cache = cache

    @property
    def root(self) -> Path:
        return self.settings.storage.collections_dir

    # -- reading ------------------------------------------------------------------------

    def names(self) -> list[str]:
        return Collection.names(self.root)

    def open(self, name: str, create: bool = False) -> Collection:
        """The collection (CollectionNotFound unless ``create``); the caller closes it."""
        return Collection.open(self.root, name, self.settings.index, create=create)

    @contextlib.contextmanager
    def reading(self, name: str) -> Iterator[Collection]:
        collection = self.open(name)
        try:
            yield collection
        finally:
            collection.close()

    def info(self, name: str) -> CollectionInfo:
        with self.reading(name) as collection:
            return collection.info()

    def infos(self, names: Sequence[str] | None = None) -> list[CollectionInfo]:
        """Every (or each named) collection's info, skipping any dropped meanwhile."""
        result = []
        for name in self.names() if names is None else names:
            with contextlib.suppress(CollectionNotFound):
                result.append(self.info(name))
        return result

    def documents(self, name: str) -> list[DocumentRecord]:
        with self.reading(name) as collection:
            return collection.docstore.documents()

    def find_document(self, name: str, ref: str) -> DocumentRecord:
        """A document by id, or by file name when only one document has that name."""
        records = self.documents(name)
        matches = [r for r in records if str(r.doc_id) == ref] or [
            r for r in records if PurePath(r.source).name == ref
        ]
        if not matches:
            raise DocumentNotFound(f"document {ref!r} is not in collection {name!r}")
        if len(matches) > 1:
            raise AmbiguousDocument(f"{len(matches)} documents are named {ref!r}; use the id")
        return matches[0]

    # -- writing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writer(self, name: str, wait_s: float | None) -> Iterator[Collection]:
        """The collection opened for writing with its lock held (None: wait forever)."""
        collection = self.open(name)
        try:
            lock = collection.writer_lock()
            try:
                lock.acquire(timeout=-1 if wait_s is None else wait_s)
            except Timeout:
                raise CollectionBusy(
                    f"collection {name!r} is being ingested; retry later"
                ) from None
            try:
                yield collection
            finally:
                lock.release()
        finally:
            collection.close()
            self._invalidate(name)

    def ingest(
        self,
        name: str,
        paths: Sequence[str | Path],
        *,
        force: bool = False,
        progress: ProgressSink | None = None,
        roots: Sequence[str] | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> IngestReport:
        """Parse, chunk, embed and write files into the collection (created if needed);
        waits for any other writer of the same collection. ``roots``: read only files that
        lie under these folders when opened (what a remote client may name). ``sources``:
        the document source to record for a path (an upload staged in its job's folder is
        stored as the upload folder's file of that name, so uploading a name again
        updates the document)."""
        collection = self.open(validate_name(name), create=True)
        try:
            pipeline = IngestPipeline(
                self.settings, collection, embedder=self.components.embedder, progress=progress
            )
            return pipeline.run(paths, force=force, roots=roots, sources=sources)
        finally:
            collection.close()
            self._invalidate(name)

    def delete_documents(
        self, name: str, sources: Sequence[str], wait_s: float | None = LOCK_WAIT_S
    ) -> list[str]:
        """Remove documents by source path; returns the sources that were present."""
        with self._writer(name, wait_s) as collection:
            return collection.delete_documents(sources)

    def drop(self, name: str, wait_s: float | None = LOCK_WAIT_S) -> None:
        """Delete the whole collection, once no ingestion is writing it."""
        with self._writer(name, wait_s):
            Collection.drop(self.root, name)

    def _invalidate(self, name: str) -> None:
        if self.cache is not None:
            self.cache.invalidate(name)
