"""Typed records passed between the ingestion stages (parse → chunk → embed → write)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Element:
    """One structural element of a parsed document (paragraph, title, table, list item…)."""

    text: str
    category: str  # unstructured's element type: Title, NarrativeText, Table, ListItem…
    page: int | None = None  # page, slide or sheet number (1-based) where the format has one
    sheet: str | None = None
    headings: tuple[str, ...] = ()  # enclosing section titles, outermost first
    table_html: str | None = None


@dataclass(slots=True)
class ParsedDocument:
    """A file after parsing: its elements, or the reason it yields none."""

    source: str  # absolute path
    content_hash: str  # sha256 of the file bytes
    size_bytes: int
    file_type: str
    elements: list[Element] = field(default_factory=list)
    error: str | None = None
    parse_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class Chunk:
    """A retrievable span: text plus the metadata needed to cite it."""

    text: str
    source: str
    position: int  # order within the document
    token_count: int
    content_hash: str  # sha256 of the chunk text, used for dedup
    category: str  # "text" or "table"
    page: int | None = None
    sheet: str | None = None
    headings: tuple[str, ...] = ()
    table_html: str | None = None
    metadata: dict[str, Any] | None = None  # an imported row's own fields


@dataclass(slots=True)
class PendingDocument:
    """A chunked document awaiting its vectors."""

    document: ParsedDocument
    chunks: list[Chunk]
    element_keys: frozenset[int]  # its short elements' keys, for boilerplate counts


@dataclass(slots=True)
class CommitGroup:
    """Documents embedded together and written in one transaction."""

    documents: list[PendingDocument] = field(default_factory=list)

    @property
    def chunks(self) -> list[Chunk]:
        return [chunk for pending in self.documents for chunk in pending.chunks]

    @property
    def texts(self) -> list[str]:
        return [chunk.text for chunk in self.chunks]


SMALL_CHUNK_TOKENS = 32  # "small": under this, a chunk rarely carries a whole statement


@dataclass(slots=True, frozen=True)
class ChunkSizeStats:
    """How big chunks are: the median and the share of small ones, in tokens."""

    chunks: int
    median_tokens: float | None  # None when there are no chunks
    share_small: float | None  # share under SMALL_CHUNK_TOKENS

    @classmethod
    def of(cls, token_counts: list[int]) -> ChunkSizeStats:
        if not token_counts:
            return cls(0, None, None)
        ordered = sorted(token_counts)
        n = len(ordered)
        median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
        small = sum(1 for count in ordered if count < SMALL_CHUNK_TOKENS)
        return cls(n, median, small / n)
