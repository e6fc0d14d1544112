"""Batch ingestion: discover → (skip unchanged) → parse → chunk → embed → write.

Each stage is a plain function over a batch (``discover``, ``parse_files``,
``Chunker.run``, ``Embedder.encode``, ``Collection.write_documents``).
``IngestPipeline`` sequences them, groups documents into commit groups and commits
each group in one transaction; parsing and embedding run on an executor (this machine's
process pool, or a Ray cluster: ``ragline.ingest.executor``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from ragline.ingest.boilerplate import (
    NO_BOILERPLATE,
    Boilerplate,
    all_keys,
    candidate_keys,
    find_boilerplate,
)
from ragline.ingest.chunk import Chunker
from ragline.ingest.collection import Collection
from ragline.ingest.confine import OutsideRootsError, open_file, under
from ragline.ingest.docstore import DocumentWrite
from ragline.ingest.embed import Embedder
from ragline.ingest.executor import Embedded, IngestExecutor, make_executor
from ragline.ingest.tokens import HFTokenCounter
from ragline.ingest.types import ChunkSizeStats, CommitGroup, ParsedDocument, PendingDocument
from ragline.settings import Settings


class Status(StrEnum):
    INGESTED = "ingested"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DUPLICATE = "duplicate"
    FAILED = "failed"


@dataclass(slots=True)
class FileOutcome:
    source: str
    status: Status
    chunks: int = 0
    file_type: str = ""
    detail: str = ""  # error reason, or the source this file duplicates


@dataclass(slots=True)
class IngestReport:
    collection: str
    executor: str = "local"
    outcomes: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0
    parse_seconds: float = 0.0
    embed_seconds: float = 0.0
    chunks_embedded: int = 0
    chunk_tokens: list[int] = field(default_factory=list)  # each embedded chunk's size
    boilerplate_dropped: int = 0  # elements left out as navigation boilerplate
    small_merged: int = 0  # small chunks merged into a neighbour

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def chunk_stats(self) -> ChunkSizeStats:
        return ChunkSizeStats.of(self.chunk_tokens)

    @property
    def failures(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == Status.FAILED]


class ProgressSink(Protocol):
    def start(self, total_files: int) -> None: ...

    def file_done(self, outcome: FileOutcome) -> None: ...

    def embedded(self, n_chunks: int, seconds: float) -> None: ...


class NullProgress:
    def start(self, total_files: int) -> None:
        pass

    def file_done(self, outcome: FileOutcome) -> None:
        pass

    def embedded(self, n_chunks: int, seconds: float) -> None:
        pass


def _batched(items: Iterable[ParsedDocument], size: int) -> Iterator[list[ParsedDocument]]:
    iterator = iter(items)
    while window := list(itertools.islice(iterator, size)):
        yield window


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Files under the given paths (recursively), hidden files skipped, sorted, unique."""
    found: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path)
                if child.is_file() and not any(p.startswith(".") for p in relative.parts):
                    found[child.resolve()] = None
        elif path.is_file():
            found[path.resolve()] = None
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
    return list(found)


_OUTSIDE = "leads outside the allowed ingest roots"


def _outside(paths: Sequence[Path], roots: Sequence[str]) -> list[Path]:
    """Named paths that no longer resolve under a root (checked before any folder walk)."""
    resolved_roots = [Path(root).resolve() for root in roots]
    return [path for path in paths if not under(path.resolve(), resolved_roots)]


def collection_config(settings: Settings, embedder: Embedder) -> dict[str, object]:
    return {
        "embedding_model": settings.embedding.model,
        "dimension": embedder.dimension,
        "chunk_size": settings.chunking.size,
        "chunk_overlap": settings.chunking.overlap,
    }


class IngestPipeline:
    def __init__(
        self,
        settings: Settings,
        collection: Collection,
        embedder: Embedder | None = None,
        progress: ProgressSink | None = None,
        executor: IngestExecutor | None = None,
    ) -> None:
        self.settings = settings
        self.collection = collection
        self.embedder = embedder or Embedder(settings.embedding)
        self.executor = executor or make_executor(settings, self.embedder)
        self.chunker = Chunker(settings.chunking, HFTokenCounter(self.embedder.model_path))
        self.progress = progress or NullProgress()
        self._sources: dict[str, str] = {}  # file path -> the source it is stored as

    def run(
        self,
        paths: Sequence[str | Path],
        force: bool = False,
        roots: Sequence[str] | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> IngestReport:
        """Ingest files and folders: unchanged files are skipped, the rest parsed in workers.
        With ``roots`` (server paths a client named), a file is read only if it lies under
        one of them when opened: any of them may have become a symlink since it was named.
        ``sources`` maps a file's absolute path to the source to store it as."""
        started = time.perf_counter()
        report = IngestReport(collection=self.collection.name, executor=self.executor.name)
        self._sources = dict(sources or {})
        named = [Path(p) for p in paths]
        outside = [] if roots is None else _outside(named, roots)
        files = discover([p for p in named if p not in outside])
        self.progress.start(len(files) + len(outside))
        with self.collection.writer_lock():
            self.collection.ensure_config(collection_config(self.settings, self.embedder))
            self.collection.record_runtime(self.embedder.runtime_name)
            for path in outside:
                outcome = FileOutcome(self._source(path), Status.FAILED, detail=_OUTSIDE)
                self._record(report, outcome)
            to_parse = self._skip_known(files, report, force, roots)
            parsed = self.executor.parse(to_parse, self.settings.parsing, roots)
            self._chunk_embed_write((self._as_source(d) for d in parsed), report)
        report.seconds = time.perf_counter() - started
        return report

    def _source(self, path: str | Path) -> str:
        return self._sources.get(str(path), str(path))

    def _as_source(self, document: ParsedDocument) -> ParsedDocument:
        document.source = self._source(document.source)
        return document

    def ingest_documents(self, documents: Sequence[ParsedDocument]) -> IngestReport:
        """Ingest already-parsed records (datasets, other loaders); same-hash records at
        the same source are skipped."""
        started = time.perf_counter()
        report = IngestReport(collection=self.collection.name, executor=self.executor.name)
        self.progress.start(len(documents))
        with self.collection.writer_lock():
            self.collection.ensure_config(collection_config(self.settings, self.embedder))
            self.collection.record_runtime(self.embedder.runtime_name)
            fresh = []
            for document in documents:
                record = self.collection.docstore.document(document.source)
                if record is not None and record.content_hash == document.content_hash:
                    self._record(
                        report,
                        FileOutcome(
                            document.source, Status.UNCHANGED, record.n_chunks, record.file_type
                        ),
                    )
                else:
                    fresh.append(document)
            self._chunk_embed_write(fresh, report)
        report.seconds = time.perf_counter() - started
        return report

    def _chunk_embed_write(self, documents: Iterable[ParsedDocument], report: IngestReport) -> None:
        # Documents are chunked a window at a time, so that boilerplate repeating across
        # the batch is known before the first of them is chunked. Each window's last group
        # is committed before the next window is chunked: its documents count towards the
        # next window's boilerplate.
        for window in _batched(documents, self.settings.chunking.boilerplate_window):
            self._embed_write(window, report)
            window.clear()  # a big document's text is not held through the checkpoint
        self.collection.flush()

    def _embed_write(self, window: list[ParsedDocument], report: IngestReport) -> None:
        # A function of its own: the last group's chunks and vectors are freed on return,
        # not kept by a loop variable while flush() builds the index checkpoint.
        for embedded in self.executor.embed(self._commit_groups(window, report)):
            self._write(embedded, report)

    def _commit_groups(
        self, window: list[ParsedDocument], report: IngestReport
    ) -> Iterator[CommitGroup]:
        """The window's documents chunked, in groups of about ``pipeline.commit_chunks``
        chunks; a document without chunks is recorded as failed."""
        config = self.settings.chunking
        keys = [
            candidate_keys(d, config.boilerplate_max_chars) if d.ok else frozenset() for d in window
        ]
        boilerplate = self._boilerplate(window, keys)
        group = CommitGroup()
        group_chunks = 0
        for position, (document, document_keys) in enumerate(zip(window, keys, strict=True)):
            report.parse_seconds += document.parse_seconds
            chunking = self.chunker.chunk(document, boilerplate) if document.ok else None
            if chunking is not None and not chunking.chunks and chunking.boilerplate_dropped:
                # Text that other documents repeat is still this document's whole
                # content (copies of one e-mail, say): keep it rather than lose it.
                chunking = self.chunker.chunk(document)
            chunks = chunking.chunks if chunking is not None else []
            if chunking is not None:
                report.boilerplate_dropped += chunking.boilerplate_dropped
                report.small_merged += chunking.merged
            if not chunks:
                reason = document.error or "no chunks after cleaning"
                outcome = FileOutcome(
                    document.source, Status.FAILED, file_type=document.file_type, detail=reason
                )
                self._record(report, outcome)
                continue
            # Chunked: its elements (a big file's whole text) need not live on through
            # embedding and writing. A copy, in the window too: the caller's is untouched.
            window[position] = document = replace(document, elements=[])
            group.documents.append(PendingDocument(document, chunks, document_keys))
            group_chunks += len(chunks)
            if group_chunks >= self.settings.pipeline.commit_chunks:
                yield group
                group, group_chunks = CommitGroup(), 0
        if group.documents:
            yield group

    def _boilerplate(self, window: list[ParsedDocument], keys: list[frozenset[int]]) -> Boilerplate:
        """Short elements found in enough documents: this window's plus those stored,
        minus the stored versions of documents this window replaces."""
        minimum = self.settings.chunking.boilerplate_min_documents
        if minimum <= 0:
            return NO_BOILERPLATE
        stored = self.collection.docstore.element_document_counts(
            sorted(all_keys(keys)), exclude_sources=[d.source for d in window]
        )
        return find_boilerplate(keys, stored, minimum)

    def _skip_known(
        self, files: list[Path], report: IngestReport, force: bool, roots: Sequence[str] | None
    ) -> list[Path]:
        """Unchanged files (same content hash at the same source) are not parsed again;
        a file identical to another stored document is reported as its duplicate."""
        to_parse: list[Path] = []
        claimed: dict[str, str] = {}  # content hash -> first source in this batch
        for path in files:
            source = self._source(path)
            try:
                with open_file(path, roots) as opened:
                    digest = opened.sha256()
            except (OSError, ValueError) as exc:
                detail = str(exc) if isinstance(exc, OutsideRootsError) else f"unreadable: {exc}"
                self._record(report, FileOutcome(source, Status.FAILED, detail=detail))
                continue
            record = self.collection.docstore.document(source)
            if record is not None and record.content_hash == digest and not force:
                self._record(
                    report, FileOutcome(source, Status.UNCHANGED, record.n_chunks, record.file_type)
                )
                continue
            twin = self.collection.docstore.document_with_hash(digest)
            twin_source = twin.source if twin is not None and twin.source != source else None
            twin_source = twin_source or claimed.get(digest)
            if twin_source is not None and record is None:
                self._record(
                    report,
                    FileOutcome(source, Status.DUPLICATE, detail=f"same content as {twin_source}"),
                )
                continue
            claimed.setdefault(digest, source)
            to_parse.append(path)
        return to_parse

    def _write(self, embedded: Embedded, report: IngestReport) -> None:
        """Commit one group: its documents replace any stored versions in one transaction."""
        chunks = embedded.group.chunks
        report.embed_seconds += embedded.seconds
        report.chunks_embedded += len(chunks)
        report.chunk_tokens.extend(chunk.token_count for chunk in chunks)
        self.progress.embedded(len(chunks), embedded.seconds)

        writes: list[DocumentWrite] = []
        offset = 0
        for pending in embedded.group.documents:
            document, n = pending.document, len(pending.chunks)
            writes.append(
                DocumentWrite(
                    source=document.source,
                    content_hash=document.content_hash,
                    file_type=document.file_type,
                    size_bytes=document.size_bytes,
                    chunks=pending.chunks,
                    vectors=embedded.vectors[offset : offset + n],
                    element_keys=pending.element_keys,
                )
            )
            offset += n
        existing = {w.source for w in writes if self.collection.docstore.document(w.source)}
        self.collection.write_documents(writes)
        for write in writes:
            status = Status.UPDATED if write.source in existing else Status.INGESTED
            self._record(
                report, FileOutcome(write.source, status, len(write.chunks), write.file_type)
            )

    def _record(self, report: IngestReport, outcome: FileOutcome) -> None:
        report.outcomes.append(outcome)
        self.progress.file_done(outcome)
