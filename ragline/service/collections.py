"""Collection operations, one implementation for the CLI, the HTTP API and the benchmarks:
list, describe, ingest, find and delete documents, drop.

Writers take the collection's writer lock here (never in the callers), waiting at most
``wait_s`` before answering CollectionBusy; every change invalidates the result cache.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
from ragline.ingest.importer import ParquetRows, RowError
from ragline.ingest.pipeline import IngestPipeline, IngestReport, ProgressSink, collection_config
from ragline.ingest.priority import lower_thread_priority
from ragline.ingest.tokens import HFTokenCounter
from ragline.retrieve.cache import ResultCache
from ragline.service.components import Components

LOCK_WAIT_S = 10.0  # a delete waits this long for a running ingestion to finish


class CollectionBusy(CollectionError):
    """Another writer (an ingestion) holds the collection."""


class DocumentNotFound(CollectionError):
    pass


class AmbiguousDocument(CollectionError):
    """A file name that several documents of the collection share."""


@dataclass(slots=True)
class ImportReport:
    collection: str
    rows: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    seconds: float = 0.0


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
            self.invalidate(name)

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
        lower_thread_priority(self.settings.ingest.nice)  # before any worker or writer starts
        collection = self.open(validate_name(name), create=True)
        try:
            pipeline = IngestPipeline(
                self.settings, collection, embedder=self.components.embedder, progress=progress
            )
            return pipeline.run(paths, force=force, roots=roots, sources=sources)
        finally:
            collection.close()
            self.invalidate(name)

    def import_parquet(
        self,
        name: str,
        path: Path,
        *,
        model: str | None = None,
        on_batch: Callable[[ImportReport], None] | None = None,
    ) -> ImportReport:
        """Rows with their own embeddings (see ``ragline.ingest.importer``) into the
        collection (created if needed). ``model`` names the model that made the vectors:
        it must be the one queries are embedded with, and the collection's."""
        started = time.perf_counter()
        lower_thread_priority(self.settings.ingest.nice)
        embedding = self.settings.embedding
        if model is not None and model != embedding.model:
            raise CollectionError(
                f"the vectors were made with {model!r} but queries are embedded with "
                f"{embedding.model!r}: set embedding.model (RAGLINE_EMBEDDING__MODEL) to "
                "the model that made them"
            )
        rows = ParquetRows(path)
        embedder = self.components.embedder
        report = ImportReport(collection=validate_name(name))
        collection = self.open(name, create=True)
        try:
            with collection.writer_lock():
                collection.ensure_config(collection_config(self.settings, embedder))
                tokens = HFTokenCounter(embedder.model_path)
                commit_rows = self.settings.pipeline.import_rows
                for batch in rows.batches(embedder.dimension, tokens, commit_rows):
                    report.rows += batch.rows
                    report.errors += batch.errors
                    # One write per document in a commit: a repeated id's last row wins.
                    latest = {write.source: write for write in batch.writes}
                    report.replaced += len(batch.writes) - len(latest)
                    fresh = []
                    for write in latest.values():
                        stored = collection.docstore.document(write.source)
                        if stored is not None and stored.content_hash == write.content_hash:
                            report.unchanged += 1
                            continue
                        fresh.append(write)
                        if stored is None:
                            report.added += 1
                        else:
                            report.replaced += 1
                    collection.write_documents(fresh)
                    if on_batch is not None:
                        on_batch(report)
                collection.flush()
        finally:
            collection.close()
            self.invalidate(name)
        report.seconds = time.perf_counter() - started
        return report

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

    def invalidate(self, name: str) -> None:
        """Drop the collection's cached results now (another process changed it; they
        are unreachable by its generation anyway, this frees them)."""
        if self.cache is not None:
            self.cache.invalidate(name)
