"""A named collection on disk: SQLite docstore (truth), FAISS and lexical indexes (derived).

Layout: ``<data_dir>/collections/<name>/{docstore.sqlite, index.faiss, index.json,
lexical/}``. Each derived index records the docstore generation it reflects and catches
up by replaying the docstore's change log: a reader in any process applies the adds and
removes of a commit group to its in-memory FAISS index instead of reloading the file,
and the writer updates the on-disk lexical index in the same commit group. A saved FAISS
file is a checkpoint (loaded, then caught up); only when the log no longer reaches back
(after a crash, or a reader far behind) is an index rebuilt from the stored chunks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from ragline.ingest.docstore import ChangeSet, DocStore, DocumentWrite
from ragline.ingest.index import FLAT, IVF, MappedIndex, VectorIndex, gpu_available
from ragline.ingest.lexical import LexicalIndex
from ragline.ingest.types import ChunkSizeStats
from ragline.settings import IndexSettings

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class CollectionError(Exception):
    """A collection-level problem a caller can report as-is (bad name, not found, mismatch)."""


class CollectionNotFound(CollectionError):
    pass


def validate_name(name: str) -> str:
    # fullmatch: with match, "$" also matched before a final newline ("docs\n").
    if not _NAME.fullmatch(name) or ".." in name:
        raise CollectionError(
            f"invalid collection name {name!r}: use letters, digits, '.', '_' or '-' (max 64)"
        )
    return name


@dataclass(slots=True, frozen=True)
class CollectionInfo:
    name: str
    documents: int
    chunks: int
    generation: int
    embedding_model: str | None
    index_kind: str
    size_bytes: int
    chunk_sizes: ChunkSizeStats = field(default_factory=lambda: ChunkSizeStats(0, None, None))
    # Every runtime that wrote vectors here (e.g. openvino-int8): each passed the quality
    # gate against torch fp32, which is what makes their vectors interchangeable.
    embedding_runtimes: list[str] = field(default_factory=list)


class Collection:
    DOCSTORE = "docstore.sqlite"
    INDEX = "index.faiss"  # a checkpoint written before checkpoints were named by generation
    MANIFEST = "index.json"
    LEXICAL = "lexical"
    # Change-log generations kept behind the oldest persisted index, so that readers a
    # little behind catch up by replay rather than a reload.
    KEEP_CHANGES = 1000

    def __init__(self, root: Path, name: str, settings: IndexSettings) -> None:
        self.name = validate_name(name)
        self.path = root / name
        self.settings = settings
        self.docstore = DocStore(self.path / self.DOCSTORE)
        self.lexical = LexicalIndex(self.path / self.LEXICAL)
        self._index: VectorIndex | None = None
        self._index_generation = -1  # docstore generation the in-memory index reflects
        # FAISS is not safe to search while it is being changed: catch-up and writes
        # take this lock, and so do searches.
        self._index_lock = threading.RLock()

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def open(
        cls, root: Path, name: str, settings: IndexSettings, create: bool = False
    ) -> Collection:
        path = root / validate_name(name)
        if not (path / cls.DOCSTORE).exists():
            if not create:
                raise CollectionNotFound(f"collection {name!r} does not exist")
            path.mkdir(parents=True, exist_ok=True)
        return cls(root, name, settings)

    def writer_lock(self) -> FileLock:
        """Held by a writer for the whole batch: one writer per collection at a time."""
        return FileLock(str(self.path / ".write.lock"))

    def close(self) -> None:
        self.lexical.close()
        self.docstore.close()

    @staticmethod
    def names(root: Path) -> list[str]:
        if not root.exists():
            return []
        return sorted(p.name for p in root.iterdir() if (p / Collection.DOCSTORE).exists())

    @staticmethod
    def drop(root: Path, name: str) -> None:
        path = root / validate_name(name)
        if not (path / Collection.DOCSTORE).exists():
            raise CollectionNotFound(f"collection {name!r} does not exist")
        # Rename first so a crash never leaves a half-deleted collection that looks valid.
        trash = path.with_name(f".{name}.deleting")
        os.replace(path, trash)
        shutil.rmtree(trash)

    # -- configuration guard ------------------------------------------------------------

    def ensure_config(self, config: dict[str, Any]) -> None:
        """Record the embedding/chunking config on first write; refuse a mismatch later,
        since vectors from different models or chunkings must not be mixed."""
        stored = self.docstore.get_meta("config")
        if stored is None:
            self.docstore.set_meta("config", config)
            return
        if stored != config:
            diff = {k: (stored.get(k), v) for k, v in config.items() if stored.get(k) != v}
            raise CollectionError(
                f"collection {self.name!r} was built with different settings {diff}; "
                "use a new collection or delete this one"
            )

    def record_runtime(self, runtime: str) -> None:
        """Note the embedding runtime that is about to write vectors (writer lock held)."""
        runtimes = self.embedding_runtimes
        if runtime not in runtimes:
            self.docstore.set_meta("embedding_runtimes", [*runtimes, runtime])

    @property
    def embedding_runtimes(self) -> list[str]:
        value = self.docstore.get_meta("embedding_runtimes")
        return [str(v) for v in value] if isinstance(value, list) else []

    @property
    def config(self) -> dict[str, Any] | None:
        value = self.docstore.get_meta("config")
        return value if isinstance(value, dict) else None

    @property
    def generation(self) -> int:
        return self.docstore.generation

    @property
    def collection_id(self) -> str:
        """Random, made when the collection was created: a collection dropped and created
        again under the same name has another id (its generations start again)."""
        return self.docstore.collection_id

    # -- dense index ----------------------------------------------------------------------

    @property
    def index(self) -> VectorIndex:
        """The in-memory FAISS index, caught up with the docstore's latest commit."""
        with self._index_lock:
            self.catch_up()
            assert self._index is not None
            return self._index

    def _loaded_index(self) -> VectorIndex:
        if self._index is None:
            self._index = self._load_or_rebuild_index()
        return self._index

    def _dimension(self) -> int | None:
        config = self.config
        return int(config["dimension"]) if config and "dimension" in config else None

    def catch_up(self) -> int:
        """Bring the in-memory index to the docstore's generation by replaying the change
        log (another process's commits); returns the generation it now reflects."""
        with self._index_lock:
            index = self._loaded_index()
            if self._index_generation == self.docstore.generation:
                return self._index_generation
            changes = self.docstore.changes_since(self._index_generation)
            if (
                changes is None  # too far behind to replay: load the checkpoint again
                or index.dim != (self._dimension() or index.dim)
                # A newer checkpoint holds the changes a mapped one keeps beside it.
                or (
                    isinstance(index, MappedIndex)
                    and self._saved_manifest().get("generation", -1) > index.generation
                )
            ):
                self._index = None
                self._loaded_index()
            else:
                self._apply_dense(index, changes)
            return self._index_generation

    def _apply_dense(self, index: VectorIndex, changes: ChangeSet) -> None:
        # Added ids are newer than anything the index holds (ids only grow, and a
        # checkpoint is never newer than its manifest says): only removals are removed.
        index.remove(changes.removed)
        if changes.added:
            ids, vectors = self.docstore.vectors_by_id(changes.added, index.dim)
            index.add(ids, vectors)
        self._index_generation = changes.generation

    def search_dense(
        self, query_vector: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) from the caught-up index (see ``VectorIndex.search``)."""
        with self._index_lock:
            return self.index.search(query_vector[None, :], k, allowed)

    @property
    def _maps(self) -> bool:
        """Whether IVF checkpoints are mapped (``index.mmap``; GPU search needs a copy)."""
        return self.settings.mmap and not gpu_available(self.settings)

    def _load_or_rebuild_index(self, mapped: bool = True) -> VectorIndex:
        """The saved checkpoint caught up from the log (mapped when ``index.mmap`` asks
        and ``mapped`` allows), or a rebuild when it cannot be."""
        manifest = self._saved_manifest()
        index_path = self.path / str(manifest.get("file", self.INDEX))
        if manifest and index_path.exists():
            saved = int(manifest.get("generation", -1))
            changes = self.docstore.changes_since(saved)
            if changes is not None:
                index: VectorIndex | None = None
                if mapped and self._maps and manifest.get("kind") == IVF:
                    index = MappedIndex.map(index_path, self.settings, saved)
                index = index or VectorIndex.load(index_path, self.settings)
                encoding_ok = index.encoding in (None, self.settings.ivf_encoding)
                if encoding_ok and index.dim == (self._dimension() or index.dim):
                    self._index_generation = saved
                    if changes.generation != saved:
                        self._apply_dense(index, changes)
                    return index
        # Persist the rebuilt index only when no writer is at work: a reader saving an
        # index of generation g could otherwise land after a writer's g+1 and leave the
        # manifest and the index file disagreeing. A writer (this thread included) saves
        # its own index when it flushes.
        try:
            with FileLock(str(self.path / ".write.lock"), timeout=0):
                return self.rebuild_index()
        except Timeout:
            return self.rebuild_index(persist=False)

    def rebuild_index(self, persist: bool = True) -> VectorIndex:
        """Rebuild from the docstore's vectors (flat or IVF by size); ``persist`` saves it."""
        with self._index_lock:
            dim = self._dimension()
            # Chunks committed while the stored ones are read have higher ids: left out
            # here, they come with the log replayed from ``generation``.
            generation, upto, count = self.docstore.vector_snapshot()
            if dim is None:
                index = VectorIndex.empty(1, self.settings)
            else:
                index = VectorIndex.build_streaming(
                    dim,
                    count,
                    lambda: self.docstore.iter_vectors(dim, upto=upto),
                    self.settings,
                )
            self._index = index
            self._index_generation = generation
            if persist:
                self._save_index(index, generation, index.ntotal)
            return index

    def _save_index(self, index: VectorIndex, generation: int, trained_on: int) -> None:
        """A checkpoint in a file of its own generation, then the manifest pointing at it
        (atomic renames both): a crash in between leaves the previous pair intact, so the
        log is never replayed onto vectors the file already holds."""
        name = f"index-{generation}.faiss"
        index.save(self.path / name)
        manifest = {
            "generation": generation,
            "file": name,
            "kind": index.kind,
            "encoding": index.encoding,
            "ntotal": index.ntotal,
            "trained_on": trained_on,  # vectors the IVF lists were trained on
        }
        tmp = self.path / (self.MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, self.path / self.MANIFEST)
        for old in [self.path / self.INDEX, *self.path.glob("index-*.faiss")]:
            if old.name != name:
                old.unlink(missing_ok=True)

    def _saved_manifest(self) -> dict[str, Any]:
        path = self.path / self.MANIFEST
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def flush(self) -> None:
        """Writer only, at the end of a batch: write a FAISS checkpoint at the docstore's
        generation (the saved one caught up from the log, or a rebuild when the index has
        outgrown flat search or its IVF lists were trained on far fewer vectors), then
        forget changes every persisted index has reached."""
        with self._index_lock:
            saved = self._saved_manifest()
            if saved.get("generation") != self.docstore.generation:
                # Decided from the docstore, before catching the index up: a rebuild
                # replaces it, and the old one (a copy of every vector) is let go first.
                total = self.docstore.counts()[1]
                kind = self._index.kind if self._index is not None else saved.get("kind", FLAT)
                trained_on = int(saved.get("trained_on", total) or 1)
                if (kind == FLAT and total > self.settings.flat_max_vectors) or (
                    kind != FLAT and total > 2 * trained_on
                ):
                    self._index = None
                    self.rebuild_index()
                else:
                    if isinstance(self._index, MappedIndex) or self._index is None:
                        # Checkpoints are written from a copy in memory (a mapped index
                        # is read-only), held only while this one is made.
                        self._index = self._load_or_rebuild_index(mapped=False)
                    index = self.index
                    self._save_index(index, self._index_generation, trained_on)
                if self._maps and self._index is not None and self._index.kind == IVF:
                    self._index = None  # the next read maps the new checkpoint
        oldest = min(self._saved_manifest().get("generation", -1), self.lexical.generation)
        self.docstore.prune_changes(oldest - self.KEEP_CHANGES)

    # -- lexical index --------------------------------------------------------------------

    def repair_lexical(self) -> None:
        """Writer only: bring the lexical index to the docstore's generation (replaying
        the log, or rebuilding when a crash left it too far behind)."""
        current = self.docstore.generation
        if self.lexical.generation == current:
            return
        changes = self.docstore.changes_since(self.lexical.generation)
        if changes is None:
            self.lexical.rebuild(self._all_texts(), current)
        else:
            self.lexical.apply(
                changes.removed, self.docstore.texts_by_id(changes.added), changes.generation
            )

    def _all_texts(self) -> Iterator[tuple[int, str]]:
        for chunk in self.docstore.iter_chunks():
            yield chunk.chunk_id, chunk.text

    def repair(self) -> bool:
        """For readers, at open: bring the on-disk lexical index up to the docstore (a
        crashed writer, or a collection made before it existed) unless a writer is at
        work, which repairs it itself. Returns False when it is left behind."""
        if self.lexical.generation == self.docstore.generation:
            return True
        try:
            with self.writer_lock().acquire(timeout=0):
                try:
                    self.repair_lexical()
                finally:
                    self.lexical.release_writer()  # the real writer will need it
        except Timeout:
            return False
        return True

    # -- writes -------------------------------------------------------------------------

    def write_documents(self, writes: Sequence[DocumentWrite]) -> None:
        """Writer only. Commit to the docstore (atomic, logged), then to the lexical index.
        FAISS is not touched: every reader, this process's included, replays the log, and
        ``flush`` writes the checkpoint, so a writer never holds a second copy of it. A
        crash between the two commits is repaired from the log."""
        if not writes:
            return
        self.repair_lexical()
        removed, added = self.docstore.replace_documents(writes)
        texts = [chunk.text for write in writes for chunk in write.chunks]
        self.lexical.apply(removed, zip(added, texts, strict=True), self.docstore.generation)

    def delete_documents(self, sources: Sequence[str]) -> list[str]:
        """Writer only; readers replay the removal (no checkpoint is written here)."""
        self.repair_lexical()
        found, removed = self.docstore.delete_sources(sources)
        if found:
            self.lexical.apply(removed, [], self.docstore.generation)
        return found

    def info(self) -> CollectionInfo:
        docs, chunks = self.docstore.counts()
        config = self.config or {}
        size = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        manifest_path = self.path / self.MANIFEST
        kind = (
            json.loads(manifest_path.read_text()).get("kind", FLAT)
            if manifest_path.exists()
            else FLAT
        )
        return CollectionInfo(
            name=self.name,
            documents=docs,
            chunks=chunks,
            generation=self.generation,
            embedding_model=config.get("embedding_model"),
            index_kind=kind,
            size_bytes=size,
            chunk_sizes=ChunkSizeStats.of(self.docstore.token_counts()),
            embedding_runtimes=self.embedding_runtimes,
        )
