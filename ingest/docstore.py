"""SQLite docstore: the collection's source of truth.

Documents, chunks (text, metadata and vector) and a generation counter live in one
SQLite database in WAL mode. Every change is one transaction that also bumps the
generation and logs which chunk ids it added and removed, so a process killed at any
point leaves either the old or the new state. The derived indexes (FAISS, the lexical
index) are stamped with the generation they reflect and catch up from the change log
instead of being rebuilt (see ``ingest.collection``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragline.ingest.types import Chunk

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL UNIQUE,
    content_hash TEXT NOT NULL,
    file_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    n_chunks INTEGER NOT NULL,
    ingested_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_hash ON documents(content_hash);
-- AUTOINCREMENT: chunk ids are FAISS ids and must never be reused after a delete.
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    category TEXT NOT NULL,
    page INTEGER,
    sheet TEXT,
    headings TEXT NOT NULL,
    token_count INTEGER NOT NULL,
    table_html TEXT,
    vector BLOB NOT NULL,
    metadata TEXT  -- JSON object from an import (ragline import), else NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
-- What each generation added (added = 1) and removed (added = 0): derived indexes replay
-- it to catch up. Complete for generations above meta "changes_from".
CREATE TABLE IF NOT EXISTS changes (
    generation INTEGER NOT NULL,
    chunk_id INTEGER NOT NULL,
    added INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_generation ON changes(generation);
-- Keys of each document's short elements, for boilerplate counts (ingest.boilerplate).
CREATE TABLE IF NOT EXISTS element_keys (
    key INTEGER NOT NULL,
    doc_id INTEGER NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    PRIMARY KEY (key, doc_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS element_keys_doc ON element_keys(doc_id);
"""

_SQL_BATCH = 900  # bound parameters per statement, under SQLite's oldest limit (999)


def _batches(items: Sequence[Any]) -> Iterator[list[Any]]:
    """``items`` in slices small enough to bind as one statement's parameters."""
    for start in range(0, len(items), _SQL_BATCH):
        yield list(items[start : start + _SQL_BATCH])


_CHUNK_SELECT = (
    "SELECT chunk_id, doc_id, source, position, text, category, page, sheet, headings,"
    " token_count, chunks.content_hash, table_html, metadata"
    " FROM chunks JOIN documents USING (doc_id)"
)


@dataclass(slots=True, frozen=True)
class DocumentRecord:
    doc_id: int
    source: str
    content_hash: str
    file_type: str
    size_bytes: int
    n_chunks: int
    ingested_at: float


@dataclass(slots=True, frozen=True)
class StoredChunk:
    chunk_id: int
    doc_id: int
    source: str
    position: int
    text: str
    category: str
    page: int | None
    sheet: str | None
    headings: tuple[str, ...]
    token_count: int
    content_hash: str
    table_html: str | None
    metadata: dict[str, Any] | None = None


@dataclass(slots=True, frozen=True)
class ChangeSet:
    """The net change from one generation to a later one: chunk ids removed since (some
    perhaps added since too) and ids added since that are still present."""

    generation: int
    removed: list[int]
    added: list[int]


@dataclass(slots=True)
class DocumentWrite:
    """One document's replacement: its record plus embedded chunks."""

    source: str
    content_hash: str
    file_type: str
    size_bytes: int
    chunks: list[Chunk]
    vectors: np.ndarray
    element_keys: frozenset[int] = frozenset()  # see ingest.boilerplate


class DocStore:
    """One SQLite connection per thread (WAL lets readers run beside the writer)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self.conn.executescript(_SCHEMA)
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(chunks)")}
        if "metadata" not in columns:  # a docstore made before imports carried metadata
            self.conn.execute("ALTER TABLE chunks ADD COLUMN metadata TEXT")
        if self.get_meta("changes_from") is None:
            with self._transaction():
                if self.get_meta("changes_from") is None:
                    # A docstore made before the change log existed has no history to replay.
                    self.set_meta("changes_from", self.generation)
        self.collection_id = self._ensure_collection_id()

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.create_function("file_name", 1, _file_name, deterministic=True)
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def _ensure_collection_id(self) -> str:
        """The random id made when the docstore was created. Generations start again at 1
        in a re-created collection; this id never repeats, so caches key on both."""
        value = self.get_meta("collection_id")
        if value is None:  # a new docstore (or one from before ids): make it, once
            self.conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('collection_id', ?)",
                (json.dumps(uuid.uuid4().hex),),
            )
            value = self.get_meta("collection_id")
        return str(value)

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def _bump_generation(self, removed: Sequence[int], added: Sequence[int]) -> int:
        generation = self.generation + 1
        self.set_meta("generation", generation)
        self.conn.executemany(
            "INSERT INTO changes(generation, chunk_id, added) VALUES (?, ?, ?)",
            [(generation, cid, 0) for cid in removed] + [(generation, cid, 1) for cid in added],
        )
        return generation

    # -- change log ---------------------------------------------------------------------

    def changes_since(self, generation: int) -> ChangeSet | None:
        """What changed after ``generation``, up to the current one, read in one snapshot;
        None when the log no longer reaches back that far (rebuild instead)."""
        with self._read_snapshot():
            if generation < int(self.get_meta("changes_from") or 0):
                return None
            current = self.generation
            rows = self.conn.execute(
                "SELECT chunk_id, added FROM changes WHERE generation > ? AND generation <= ?",
                (generation, current),
            ).fetchall()
        removed = {int(cid) for cid, added in rows if not added}
        added = sorted({int(cid) for cid, added in rows if added} - removed)
        return ChangeSet(current, sorted(removed), added)

    def prune_changes(self, upto_generation: int) -> None:
        """Forget changes at or below a generation every persisted index has reached."""
        with self._transaction():
            if upto_generation <= int(self.get_meta("changes_from") or 0):
                return
            self.conn.execute("DELETE FROM changes WHERE generation <= ?", (upto_generation,))
            self.set_meta("changes_from", upto_generation)

    # -- documents ----------------------------------------------------------------------

    def document(self, source: str) -> DocumentRecord | None:
        row = self.conn.execute("SELECT * FROM documents WHERE source = ?", (source,)).fetchone()
        return None if row is None else DocumentRecord(*row)

    def document_with_hash(self, content_hash: str) -> DocumentRecord | None:
        row = self.conn.execute(
            "SELECT * FROM documents WHERE content_hash = ? LIMIT 1", (content_hash,)
        ).fetchone()
        return None if row is None else DocumentRecord(*row)

    def documents(self) -> list[DocumentRecord]:
        rows = self.conn.execute("SELECT * FROM documents ORDER BY source").fetchall()
        return [DocumentRecord(*row) for row in rows]

    def element_document_counts(
        self, keys: Sequence[int], exclude_sources: Sequence[str] = ()
    ) -> dict[int, int]:
        """For each key, how many stored documents hold it, not counting
        ``exclude_sources`` (documents about to be replaced)."""
        counts: dict[int, int] = {}
        for part in _batches(keys):
            rows = self.conn.execute(
                "SELECT key, COUNT(*) FROM element_keys "
                f"WHERE key IN ({','.join('?' * len(part))}) GROUP BY key",
                part,
            ).fetchall()
            counts.update((int(key), int(n)) for key, n in rows)
        for names in _batches(exclude_sources):
            rows = self.conn.execute(
                "SELECT key FROM element_keys JOIN documents USING (doc_id) "
                f"WHERE source IN ({','.join('?' * len(names))})",
                names,
            ).fetchall()
            for (key,) in rows:
                if key in counts:
                    counts[key] -= 1
        return {key: n for key, n in counts.items() if n > 0}

    def token_counts(self) -> list[int]:
        """Every chunk's token count, for size statistics (see ``ChunkSizeStats``)."""
        return [int(row[0]) for row in self.conn.execute("SELECT token_count FROM chunks")]

    def counts(self) -> tuple[int, int]:
        docs = self.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = self.conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    # -- writes -------------------------------------------------------------------------

    def replace_documents(self, writes: Sequence[DocumentWrite]) -> tuple[list[int], list[int]]:
        """Atomically (re)write documents. Returns (removed chunk ids, added chunk ids);
        added ids follow the order of ``writes`` and of each write's chunks."""
        removed: list[int] = []
        added: list[int] = []
        with self._transaction():
            for write in writes:
                removed.extend(self._delete_source(write.source)[1])
                cursor = self.conn.execute(
                    "INSERT INTO documents(source, content_hash, file_type, size_bytes, n_chunks,"
                    " ingested_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        write.source,
                        write.content_hash,
                        write.file_type,
                        write.size_bytes,
                        len(write.chunks),
                        time.time(),
                    ),
                )
                doc_id = cursor.lastrowid
                for chunk, vector in zip(write.chunks, write.vectors, strict=True):
                    cursor = self.conn.execute(
                        "INSERT INTO chunks(doc_id, position, text, content_hash, category, page,"
                        " sheet, headings, token_count, table_html, vector, metadata)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            doc_id,
                            chunk.position,
                            chunk.text,
                            chunk.content_hash,
                            chunk.category,
                            chunk.page,
                            chunk.sheet,
                            json.dumps(list(chunk.headings)),
                            chunk.token_count,
                            chunk.table_html,
                            np.asarray(vector, dtype=np.float32).tobytes(),
                            json.dumps(chunk.metadata) if chunk.metadata is not None else None,
                        ),
                    )
                    added.append(int(cursor.lastrowid or 0))
                self.conn.executemany(
                    "INSERT OR IGNORE INTO element_keys(key, doc_id) VALUES (?, ?)",
                    [(key, doc_id) for key in write.element_keys],
                )
            self._bump_generation(removed, added)
        return removed, added

    def delete_sources(self, sources: Sequence[str]) -> tuple[list[str], list[int]]:
        """Delete documents by source; returns (sources that existed, removed chunk ids)."""
        found: list[str] = []
        removed: list[int] = []
        with self._transaction():
            for source in sources:
                existed, ids = self._delete_source(source)
                if existed:
                    found.append(source)
                    removed.extend(ids)
            if found:
                self._bump_generation(removed, [])
        return found, removed

    def _delete_source(self, source: str) -> tuple[bool, list[int]]:
        rows = self.conn.execute(
            "SELECT chunk_id FROM chunks JOIN documents USING (doc_id) WHERE source = ?",
            (source,),
        ).fetchall()
        cursor = self.conn.execute("DELETE FROM documents WHERE source = ?", (source,))
        return cursor.rowcount > 0, [int(row[0]) for row in rows]

    # -- reads --------------------------------------------------------------------------

    def vector_snapshot(self) -> tuple[int, int, int]:
        """(generation, highest chunk id, chunk count) read together: an index built from
        the chunks up to that id reflects that generation, whatever commits meanwhile."""
        row = self.conn.execute(
            "SELECT (SELECT value FROM meta WHERE key = 'generation'),"
            " (SELECT COALESCE(MAX(chunk_id), -1) FROM chunks), (SELECT COUNT(*) FROM chunks)"
        ).fetchone()
        generation = int(json.loads(row[0])) if row[0] is not None else 0
        return generation, int(row[1]), int(row[2])

    def iter_vectors(
        self, dim: int, batch: int = 10_000, upto: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All (ids, vectors) in chunk-id order, in batches (only ids up to ``upto``): the
        input for an index rebuild."""
        last = -1
        bound = upto if upto is not None else 2**63 - 1
        while True:
            rows = self.conn.execute(
                "SELECT chunk_id, vector FROM chunks WHERE chunk_id > ? AND chunk_id <= ?"
                " ORDER BY chunk_id LIMIT ?",
                (last, bound, batch),
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
            yield ids, vectors.reshape(len(rows), dim)
            last = int(ids[-1])

    def vectors_by_id(self, chunk_ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the chunks among ``chunk_ids`` that exist, in id order."""
        ids: list[int] = []
        blobs: list[bytes] = []
        for batch in _batches([int(i) for i in chunk_ids]):
            marks = ",".join("?" * len(batch))
            rows = self.conn.execute(
                f"SELECT chunk_id, vector FROM chunks WHERE chunk_id IN ({marks})"
                " ORDER BY chunk_id",
                batch,
            ).fetchall()
            ids += [int(row[0]) for row in rows]
            blobs += [row[1] for row in rows]
        vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), dim)
        return np.asarray(ids, dtype=np.int64), vectors

    def texts_by_id(self, chunk_ids: Sequence[int]) -> list[tuple[int, str]]:
        """(id, text) of the chunks among ``chunk_ids`` that exist."""
        pairs: list[tuple[int, str]] = []
        for batch in _batches([int(i) for i in chunk_ids]):
            marks = ",".join("?" * len(batch))
            pairs += self.conn.execute(
                f"SELECT chunk_id, text FROM chunks WHERE chunk_id IN ({marks})", batch
            ).fetchall()
        return pairs

    def chunks_by_id(self, chunk_ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self.conn.execute(
            f"{_CHUNK_SELECT} WHERE chunk_id IN ({marks})",
            [int(i) for i in chunk_ids],
        ).fetchall()
        return {row[0]: _stored_chunk(row) for row in rows}

    def vectors(self, chunk_ids: Sequence[int], dim: int) -> dict[int, np.ndarray]:
        """chunk id -> its stored embedding, for the chunks that exist."""
        found: dict[int, np.ndarray] = {}
        for part in _batches([int(i) for i in chunk_ids]):
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT chunk_id, vector FROM chunks WHERE chunk_id IN ({marks})", part
            ).fetchall()
            for chunk_id, blob in rows:
                found[int(chunk_id)] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return found

    def document_ids(self, chunk_ids: Sequence[int]) -> dict[int, int]:
        """chunk id -> document id, for the chunks that exist."""
        found: dict[int, int] = {}
        for part in _batches([int(i) for i in chunk_ids]):
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                f"SELECT chunk_id, doc_id FROM chunks WHERE chunk_id IN ({marks})", part
            ).fetchall()
            found.update((int(chunk_id), int(doc_id)) for chunk_id, doc_id in rows)
        return found

    def chunk_ids_where(
        self,
        sources: Sequence[str] = (),
        categories: Sequence[str] = (),
        file_types: Sequence[str] = (),
        ingested_after: float | None = None,
        ingested_before: float | None = None,
        names: Sequence[str] = (),
    ) -> set[int]:
        """Chunk ids passing a metadata filter; ``sources`` may hold glob patterns of
        whole sources, ``names`` of their last part only (the file name)."""
        clauses: list[str] = []
        params: list[object] = []
        if sources:
            clauses.append("(" + " OR ".join("source GLOB ?" for _ in sources) + ")")
            params.extend(sources)
        if names:
            clauses.append("(" + " OR ".join("file_name(source) GLOB ?" for _ in names) + ")")
            params.extend(names)
        if categories:
            clauses.append(f"category IN ({','.join('?' * len(categories))})")
            params.extend(categories)
        if file_types:
            clauses.append(f"UPPER(file_type) IN ({','.join('?' * len(file_types))})")
            params.extend(t.upper() for t in file_types)
        if ingested_after is not None:
            clauses.append("ingested_at >= ?")
            params.append(ingested_after)
        if ingested_before is not None:
            clauses.append("ingested_at < ?")
            params.append(ingested_before)
        where = " AND ".join(clauses) or "1"
        rows = self.conn.execute(
            f"SELECT chunk_id FROM chunks JOIN documents USING (doc_id) WHERE {where}", params
        ).fetchall()
        return {int(row[0]) for row in rows}

    def iter_chunks(self) -> Iterator[StoredChunk]:
        cursor = self.conn.execute(f"{_CHUNK_SELECT} ORDER BY chunk_id")
        for row in cursor:
            yield _stored_chunk(row)

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn, "BEGIN IMMEDIATE")

    def _read_snapshot(self) -> _Transaction:
        """Reads that must see one generation (WAL: a consistent snapshot, no writer lock)."""
        return _Transaction(self.conn, "BEGIN DEFERRED")


class _Transaction:
    def __init__(self, conn: sqlite3.Connection, begin: str) -> None:
        self.conn = conn
        self.begin = begin

    def __enter__(self) -> None:
        self.conn.execute(self.begin)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _file_name(source: str) -> str:
    return source.rsplit("/", 1)[-1]


def _stored_chunk(row: tuple[Any, ...]) -> StoredChunk:
    return StoredChunk(
        chunk_id=row[0],
        doc_id=row[1],
        source=row[2],
        position=row[3],
        text=row[4],
        category=row[5],
        page=row[6],
        sheet=row[7],
        headings=tuple(json.loads(row[8])),
        token_count=row[9],
        content_hash=row[10],
        table_html=row[11],
        metadata=json.loads(row[12]) if row[12] is not None else None,
    )
