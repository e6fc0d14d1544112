"""Structure-aware, token-budgeted chunking with overlap.

Rules: a heading closes the current chunk and its path is carried into the next ones;
tables are chunked by whole rows with the header row repeated; prose is packed by
sentences, and only a single sentence (or row) longer than the budget is cut at token
boundaries. Overlap repeats trailing sentences of the previous chunk, up to the budget.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lxml import html as lxml_html

from ragline.ingest.tokens import TokenCounter
from ragline.ingest.types import Chunk, Element, ParsedDocument
from ragline.settings import ChunkingSettings

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n{2,}")


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).lower().encode("utf-8")).hexdigest()


@dataclass(slots=True)
class _Unit:
    text: str
    tokens: int


@dataclass(slots=True)
class _Section:
    """Consecutive elements that share a heading path and kind (prose or one table)."""

    kind: str  # "text" or "table"
    headings: tuple[str, ...]
    page: int | None
    sheet: str | None
    units: list[str]
    table_header: str | None = None


class Chunker:
    def __init__(self, settings: ChunkingSettings, tokens: TokenCounter) -> None:
        self.settings = settings
        self.tokens = tokens

    def run(self, document: ParsedDocument) -> list[Chunk]:
        sections = list(_sections(document.elements))
        # One batched tokenizer call per document: per-unit calls dominate otherwise.
        flat = [unit for section in sections for unit in section.units]
        counts = iter(self.tokens.count(flat))
        chunks: list[Chunk] = []
        seen: set[str] = set()
        for section in sections:
            units = [_Unit(text, next(counts)) for text in section.units]
            for body in self._pack(section, units):
                text = self._with_heading(section.headings, body)
                digest = text_hash(text)
                if digest in seen:  # repeated boilerplate inside one document
                    continue
                seen.add(digest)
                chunks.append(
                    Chunk(
                        text=text,
                        source=document.source,
                        position=len(chunks),
                        token_count=0,
                        content_hash=digest,
                        category=section.kind,
                        page=section.page,
                        sheet=section.sheet,
                        headings=section.headings,
                        table_html=_rows_to_html(body) if section.kind == "table" else None,
                    )
                )
        for chunk, count in zip(chunks, self.tokens.count([c.text for c in chunks]), strict=True):
            chunk.token_count = count
        return chunks

    def _with_heading(self, headings: tuple[str, ...], body: str) -> str:
        if not (self.settings.heading_prefix and headings):
            return body
        return " > ".join(headings) + "\n\n" + body

    def _budget(self, section: _Section) -> int:
        prefix = self._with_heading(section.headings, "") if section.headings else ""
        prefix_tokens = self.tokens.count([prefix])[0] if prefix else 0
        # Keep at least half the budget for content even under very deep heading paths.
        return max(self.settings.size - prefix_tokens, self.settings.size // 2)

    def _pack(self, section: _Section, units: list[_Unit]) -> list[str]:
        budget = self._budget(section)
        overlap = self.settings.overlap if section.kind == "text" else 0
        separator = "\n" if section.kind == "table" else " "
        header: _Unit | None = None
        if section.table_header is not None:
            header = _Unit(section.table_header, self.tokens.count([section.table_header])[0])
            if header.tokens > budget // 2:
                header = None  # a huge header row would crowd out the data rows
        if header is not None:
            budget -= header.tokens

        expanded: list[_Unit] = []
        for unit in units:
            if unit.tokens <= budget:
                expanded.append(unit)
                continue
            for piece in self.tokens.windows(unit.text, budget, self.settings.overlap):
                expanded.append(_Unit(piece, self.tokens.count([piece])[0]))

        bodies: list[str] = []
        current: list[_Unit] = []
        used = 0
        for unit in expanded:
            if current and used + unit.tokens > budget:
                bodies.append(_join(header, current, separator))
                current = _tail(current, overlap, budget - unit.tokens)
                used = sum(u.tokens for u in current)
            current.append(unit)
            used += unit.tokens
        if current:
            bodies.append(_join(header, current, separator))
        return bodies


def _join(header: _Unit | None, units: list[_Unit], separator: str) -> str:
    texts = [u.text for u in units]
    return separator.join([header.text, *texts] if header is not None else texts)


def _tail(units: list[_Unit], overlap: int, room: int) -> list[_Unit]:
    """Trailing units of the chunk just closed, totalling at most ``overlap`` tokens."""
    limit = min(overlap, room)
    kept: list[_Unit] = []
    total = 0
    for unit in reversed(units):
        if total + unit.tokens > limit:
            break
        kept.insert(0, unit)
        total += unit.tokens
    return kept


def _sections(elements: list[Element]) -> list[_Section]:
    sections: list[_Section] = []
    current: _Section | None = None
    orphan: Element | None = None  # a heading not yet followed by any content
    for element in elements:
        if element.category == "Title":
            # A heading closes the running section; its text lives on in the heading path.
            # A heading followed directly by another keeps its own text (slide titles, TOCs).
            if orphan is not None:
                sections.append(_orphan_section(orphan))
            orphan = element
            current = None
            continue
        orphan = None
        if element.category == "Table":
            rows = _table_rows(element)
            header, body = (rows[0], rows[1:]) if len(rows) > 1 else (None, rows)
            sections.append(
                _Section("table", element.headings, element.page, element.sheet, body, header)
            )
            current = None
            continue
        if (
            current is None
            or current.headings != element.headings
            or current.sheet != element.sheet
        ):
            current = _Section("text", element.headings, element.page, element.sheet, [])
            sections.append(current)
        current.units.extend(split_sentences(element.text))
    if orphan is not None:
        sections.append(_orphan_section(orphan))
    return [section for section in sections if section.units]


def _orphan_section(title: Element) -> _Section:
    return _Section("text", title.headings, title.page, title.sheet, [title.text])


def split_sentences(text: str) -> list[str]:
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece and piece.strip()]


def _table_rows(element: Element) -> list[str]:
    """Rows as Markdown-style pipe rows; falls back to text lines without HTML."""
    if element.table_html:
        try:
            tree = lxml_html.fromstring(element.table_html)
        except (ValueError, lxml_html.etree.ParserError):
            tree = None
        if tree is not None:
            rows = []
            for row in tree.iter("tr"):
                cells = [" ".join(cell.text_content().split()) for cell in row.iter("td", "th")]
                if any(cells):
                    rows.append("| " + " | ".join(cells) + " |")
            if rows:
                return rows
    return [line.strip() for line in element.text.splitlines() if line.strip()]


def _rows_to_html(body: str) -> str:
    """Rebuild an HTML table for one chunk's rows so citations can render it."""
    out = ["<table>"]
    for line in body.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        out.append("<tr>" + "".join(f"<td>{_escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
