"""A named collection on disk: SQLite docstore (truth) + FAISS index (derived).

Layout: ``<data_dir>/collections/<name>/{docstore.sqlite, index.faiss, index.json}``.
``index.json`` records the docstore generation the saved index reflects. On open, a
missing or stale index (a crash between the docstore commit and the index save) is
rebuilt from the stored vectors, so index and docstore always agree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from ragline.ingest.docstore import DocStore, DocumentWrite
from ragline.ingest.index import FLAT, VectorIndex
from ragline.ingest.types import ChunkSizeStats
from ragline.settings import IndexSettings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CollectionError(Exception):
    """A collection-level problem a caller can report as-is (bad name, not found, mismatch)."""


class CollectionNotFound(CollectionError):
    pass


def validate_name(name: str) -> str:
    if not _NAME.match(name) or ".." in name:
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


class Collection:
    DOCSTORE = "docstore.sqlite"
    INDEX = "index.faiss"
    MANIFEST = "index.json"

    def __init__(self, root: Path, name: str, settings: IndexSettings) -> None:
        self.name = validate_name(name)
        self.path = root / name
        self.settings = settings
        self.docstore = DocStore(self.path / self.DOCSTORE)
        self._index: VectorIndex | None = None
        self._index_generation = -1  # docstore generation the in-memory index reflects
        self._index_dirty = False

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

    @property
    def config(self) -> dict[str, Any] | None:
        value = self.docstore.get_meta("config")
        return value if isinstance(value, dict) else None

    @property
    def generation(self) -> int:
        return self.docstore.generation

    # -- index --------------------------------------------------------------------------

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self._index = self._load_or_rebuild_index()
        return self._index

    def _dimension(self) -> int | None:
        config = self.config
        return int(config["dimension"]) if config and "dimension" in config else None

    def refresh(self) -> bool:
        """For readers: drop the in-memory index if another process changed the collection.
        Returns True when it was stale."""
        if self._index is not None and self._index_generation != self.docstore.generation:
            self._index = None
            return True
        return False

    def _load_or_rebuild_index(self) -> VectorIndex:
        manifest_path = self.path / self.MANIFEST
        index_path = self.path / self.INDEX
        generation = self.docstore.generation
        if manifest_path.exists() and index_path.exists():
            manifest = json.loads(manifest_path.read_text())
            if manifest.get("generation") == generation:
                self._index_generation = generation
                return VectorIndex.load(index_path, self.settings)
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
        dim = self._dimension()
        generation = self.docstore.generation
        if dim is None:
            index = VectorIndex.empty(1, self.settings)
        else:
            batches = list(self.docstore.iter_vectors(dim))
            ids = np.concatenate([b[0] for b in batches]) if batches else np.zeros(0, np.int64)
            vectors = (
                np.concatenate([b[1] for b in batches])
                if batches
                else np.zeros((0, dim), np.float32)
            )
            index = VectorIndex.build(dim, ids, vectors, self.settings)
        self._index = index
        self._index_generation = generation
        if persist:
            self._save_index(index, generation)
        else:
            self._index_dirty = True
        return index

    def _save_index(self, index: VectorIndex, generation: int) -> None:
        index.save(self.path / self.INDEX)
        manifest = {"generation": generation, "kind": index.kind, "ntotal": index.ntotal}
        tmp = self.path / (self.MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, self.path / self.MANIFEST)
        self._index_dirty = False

    def flush(self) -> None:
        """Persist the in-memory index (switching flat → IVF when it has outgrown flat)."""
        if self._index is None or not self._index_dirty:
            return
        if self._index.kind == FLAT and self._index.ntotal > self.settings.flat_max_vectors:
            self.rebuild_index()
            return
        self._save_index(self._index, self.docstore.generation)

    # -- writes -------------------------------------------------------------------------

    def write_documents(self, writes: Sequence[DocumentWrite]) -> None:
        """Commit to the docstore (atomic), then mirror the change in the index."""
        if not writes:
            return
        index = self.index  # load before the commit, so it reflects the previous generation
        removed, added = self.docstore.replace_documents(writes)
        vectors = [w.vectors for w in writes if len(w.chunks)]
        if index.dim != self._dimension():
            self.rebuild_index()
        else:
            index.remove(removed)
            if vectors:
                index.add(added, np.concatenate(vectors, axis=0))
            self._index_dirty = True
            self._index_generation = self.docstore.generation

    def delete_documents(self, sources: Sequence[str]) -> list[str]:
        index = self.index
        found, removed = self.docstore.delete_sources(sources)
        if found:
            index.remove(removed)
            self._index_dirty = True
            self._index_generation = self.docstore.generation
            self.flush()
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
        )
