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
