"""Bring your own embeddings: rows of (id, text, embedding) from a Parquet file become
chunks, committed in groups like any ingestion, without running the embedding model.

Columns: ``id`` (string or integer), ``text``, ``embedding`` (list of floats) and
optionally ``source``, ``title`` and ``metadata`` (a JSON object, as text). Each row is
one document of one chunk, keyed ``<source or "import">#<id>``, so importing an id again
replaces it. A bad row is reported by its number and the rest go in. The file is read
in record batches: memory is bounded by the batch, not the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragline.ingest.docstore import DocumentWrite
from ragline.ingest.tokens import TokenCounter
from ragline.ingest.types import Chunk

REQUIRED = ("id", "text", "embedding")
OPTIONAL = ("source", "title", "metadata")
FILE_TYPE = "IMPORT"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (unreadable, missing columns)."""


@dataclass(slots=True, frozen=True)
class RowError:
    row: int  # 0-based row number in the file
    reason: str


@dataclass(slots=True)
class ImportBatch:
    writes: list[DocumentWrite]
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0


def document_key(row_id: str, source: str | None) -> str:
    return f"{source or 'import'}#{row_id}"


class ParquetRows:
    """An import file, checked when opened (readable, required columns present)."""

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        try:
            self.file = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError)
            raise ImportFileError(f"{path}: not a readable Parquet file ({exc})") from None
        names = set(self.file.schema_arrow.names)
        if missing := [c for c in REQUIRED if c not in names]:
            raise ImportFileError(f"{path}: missing column(s) {', '.join(missing)}")
        self.columns = [c for c in (*REQUIRED, *OPTIONAL) if c in names]

    def batches(
        self, dimension: int, tokens: TokenCounter, batch_rows: int
    ) -> Iterator[ImportBatch]:
        """The rows as document writes, ``batch_rows`` at a time."""
        first_row = 0
        for record_batch in self.file.iter_batches(batch_size=batch_rows, columns=self.columns):
            # Vectors column-wise into one array (no Python float per value); the rest as rows.
            vectors, vector_errors = _vectors(record_batch.column("embedding"), dimension)
            rows = record_batch.drop_columns(["embedding"]).to_pylist()
            yield _to_writes(rows, vectors, vector_errors, first_row, tokens)
            first_row += len(rows)


def _vectors(column: Any, dimension: int) -> tuple[np.ndarray, list[str | None]]:
    """Each row's normalised vector (a zero row where it is bad) and what is wrong with it."""
    import pyarrow.compute as pc

    lengths = pc.list_value_length(column).fill_null(-1).to_numpy(zero_copy_only=False)
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    starts = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))[:-1]]).astype(np.int64)
    vectors = np.zeros((len(lengths), dimension), dtype=np.float32)
    errors: list[str | None] = [None] * len(lengths)
    fits = lengths == dimension
    if fits.any():
        vectors[fits] = values[starts[fits, None] + np.arange(dimension)]
    norms = np.linalg.norm(vectors, axis=1)
    for row, length in enumerate(lengths):
        if length < 0:
            errors[row] = "no embedding"
        elif length != dimension:
            errors[row] = f"embedding has {length} values, the collection {dimension}"
        elif not math.isfinite(float(norms[row])) or norms[row] == 0.0:
            errors[row] = "embedding is zero or not finite"
    good = np.array([error is None for error in errors])
    vectors[good] /= norms[good, None]
    vectors[~good] = 0.0
    return vectors, errors


def _to_writes(
    rows: list[dict[str, Any]],
    vectors: np.ndarray,
    vector_errors: list[str | None],
    first_row: int,
    tokens: TokenCounter,
) -> ImportBatch:
    batch = ImportBatch(writes=[], rows=len(rows))
    good: list[tuple[dict[str, Any], np.ndarray, dict[str, Any] | None]] = []
    for offset, row in enumerate(rows):
        try:
            if vector_errors[offset] is not None:
                raise ValueError(vector_errors[offset])
            metadata = _check(row)
        except ValueError as exc:
            batch.errors.append(RowError(first_row + offset, str(exc)))
            continue
        good.append((row, vectors[offset], metadata))
    counts = tokens.count([str(row["text"]) for row, _, _ in good])
    for (row, vector, metadata), token_count in zip(good, counts, strict=True):
        text = str(row["text"])
        source = document_key(str(row["id"]), row.get("source"))
        title = row.get("title")
        digest = hashlib.sha256(text.encode() + vector.tobytes()).hexdigest()
        chunk = Chunk(
            text=text,
            source=source,
            position=0,
            token_count=token_count,
            content_hash=hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest(),
            category="text",
            headings=(str(title),) if title else (),
            metadata=metadata,
        )
        batch.writes.append(
            DocumentWrite(source, digest, FILE_TYPE, len(text.encode()), [chunk], vector[None, :])
        )
    return batch


def _check(row: dict[str, Any]) -> dict[str, Any] | None:
    """The row's metadata, or ValueError saying what is wrong with its other fields."""
    if row.get("id") is None or str(row["id"]) == "":
        raise ValueError("empty id")
    if not isinstance(row.get("text"), str) or not row["text"].strip():
        raise ValueError("empty text")
    metadata = row.get("metadata")
    if metadata is not None:
        try:
            metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        except json.JSONDecodeError as exc:
            raise ValueError(f"metadata is not JSON ({exc.msg})") from None
        if not isinstance(metadata, dict):
            raise ValueError("metadata is not a JSON object")
    return metadata
