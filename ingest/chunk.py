"""Structure-aware, token-budgeted chunking with overlap, where every chunk carries meaning.

Rules:

- navigation boilerplate (short elements repeated across the collection, found by
  ``ingest.boilerplate``) and elements repeated inside the document are left out;
- a heading closes the current section and lives on as context: its path prefixes the text
  of the section's chunks (boilerplate headings stay in the metadata path only);
- a title-like line that heads no content of its own (menu items, link lists, a slide
  title with nothing under it) is a line of text, not a heading;
- tables are chunked by whole rows with the header row repeated; prose is packed by
  sentences, and only a single sentence (or row) longer than the budget is cut at token
  boundaries; overlap repeats trailing sentences of the previous chunk, up to the budget;
- a prose chunk under ``min_tokens`` is merged with its neighbour while the result fits
  ``size``: the rule of unstructured's ``chunk_by_title(combine_text_under_n_chars=...)``.
  That function counts characters or tiktoken tokens over unstructured's own elements;
  budgets here are in the embedding model's tokens and tables keep their rows, so the rule
  is applied here. A merged chunk keeps the heading path its parts share, and each part's
  own headings are written inline above it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import html as lxml_html

from ragline.ingest.boilerplate import NO_BOILERPLATE, Boilerplate, element_key
from ragline.ingest.tokens import TokenCounter
from ragline.ingest.types import Chunk, Element, ParsedDocument
from ragline.settings import ChunkingSettings

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n{2,}")
_HEADING_SEPARATOR = " > "
_REPEAT_MIN_CHARS = 20  # shorter repeats ("Yes", "N/A") are content, not copies


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


@dataclass(slots=True)
class _Part:
    """One section's packed text inside a chunk."""

    headings: tuple[str, ...]
    text: str
    tokens: int


@dataclass(slots=True)
class _Piece:
    """A chunk before rendering: one part, or several merged small ones."""

    kind: str
    page: int | None
    sheet: str | None
    parts: list[_Part]
    tokens: int = 0  # of the rendered text


@dataclass(slots=True)
class Chunking:
    """A document's chunks and what was left out on the way."""

    chunks: list[Chunk]
    boilerplate_dropped: int = 0  # elements recognised as navigation boilerplate
    repeats_dropped: int = 0  # elements repeating an earlier one of the same document
    merged: int = 0  # small chunks merged into a neighbour


@dataclass(slots=True)
class _Context:
    """Per-document state: the boilerplate in force and a token memo for headings."""

    boilerplate: Boilerplate
    heading_tokens: dict[str, int] = field(default_factory=dict)


class Chunker:
    def __init__(self, settings: ChunkingSettings, tokens: TokenCounter) -> None:
        self.settings = settings
        self.tokens = tokens
        self._separator_tokens: int | None = None

    def run(
        self, document: ParsedDocument, boilerplate: Boilerplate = NO_BOILERPLATE
    ) -> list[Chunk]:
        return self.chunk(document, boilerplate).chunks

    def chunk(
        self, document: ParsedDocument, boilerplate: Boilerplate = NO_BOILERPLATE
    ) -> Chunking:
        result = Chunking([])
        elements = _drop_repeats(document.elements, boilerplate, result)
        sections = _sections(elements, boilerplate, result)
        context = _Context(boilerplate)
        self._count_headings(sections, context)
        # One batched tokenizer call per document: per-unit calls dominate otherwise.
        flat = [unit for section in sections for unit in section.units]
        counts = iter(self.tokens.count(flat))
        pieces: list[_Piece] = []
        for section in sections:
            units = [_Unit(text, next(counts)) for text in section.units]
            for body, tokens in self._pack(section, units, context):
                part = _Part(section.headings, body, tokens)
                piece = _Piece(section.kind, section.page, section.sheet, [part])
                piece.tokens = self._measure(piece.parts, context)
                pieces.append(piece)
        pieces = self._merge_small(pieces, context, result)

        seen: set[str] = set()
        for piece in pieces:
            text = self._render(piece.parts, context)
            digest = text_hash(text)
            if digest in seen:  # repeated boilerplate inside one document
                continue
            seen.add(digest)
            body = piece.parts[0].text
            result.chunks.append(
                Chunk(
                    text=text,
                    source=document.source,
                    position=len(result.chunks),
                    token_count=0,
                    content_hash=digest,
                    category=piece.kind,
                    page=piece.page,
                    sheet=piece.sheet,
                    headings=_common_prefix([p.headings for p in piece.parts]),
                    table_html=_rows_to_html(body) if piece.kind == "table" else None,
                )
            )
        chunks = result.chunks
        for chunk, count in zip(chunks, self.tokens.count([c.text for c in chunks]), strict=True):
            chunk.token_count = count
        return result

    # -- headings -----------------------------------------------------------------------

    def _count_headings(self, sections: list[_Section], context: _Context) -> None:
        names = list({h for section in sections for h in section.headings})
        context.heading_tokens.update(zip(names, self.tokens.count(names), strict=True))
        if self._separator_tokens is None:
            self._separator_tokens = self.tokens.count([_HEADING_SEPARATOR.strip()])[0]

    def _visible(self, headings: Sequence[str], context: _Context) -> list[str]:
        """The headings written into chunk text: boilerplate headings (a site's name on
        every page) would make every chunk alike, so they stay in the metadata only."""
        return [h for h in headings if h not in context.boilerplate]

    def _headings_tokens(self, headings: Sequence[str], context: _Context) -> int:
        if not headings:
            return 0
        separators = (len(headings) - 1) * (self._separator_tokens or 0)
        return sum(context.heading_tokens[h] for h in headings) + separators

    # -- rendering ----------------------------------------------------------------------

    def _layout(
        self, parts: Sequence[_Part], context: _Context
    ) -> tuple[list[str], list[list[str]]]:
        """The prefix path (shared headings) and, per part, the inline headings above it
        (only where they change from the previous part)."""
        common = _common_prefix([p.headings for p in parts])
        if not self.settings.heading_prefix:
            return [], [[] for _ in parts]
        inline: list[list[str]] = []
        previous: tuple[str, ...] = ()
        for part in parts:
            own = tuple(self._visible(part.headings[len(common) :], context))
            # Only the headings that change from the previous part are written again.
            inline.append(list(own[len(_common_prefix([own, previous])) :]))
            previous = own
        return self._visible(common, context), inline

    def _render(self, parts: Sequence[_Part], context: _Context) -> str:
        prefix, inline = self._layout(parts, context)
        blocks = [
            (_HEADING_SEPARATOR.join(own) + "\n" + part.text) if own else part.text
            for part, own in zip(parts, inline, strict=True)
        ]
        body = "\n\n".join(blocks)
        return _HEADING_SEPARATOR.join(prefix) + "\n\n" + body if prefix else body

    def _measure(self, parts: Sequence[_Part], context: _Context) -> int:
        """Tokens of the rendered text. WordPiece splits at whitespace first, so the count
        of a whitespace-joined text is the sum of its pieces' counts."""
        prefix, inline = self._layout(parts, context)
        return (
            self._headings_tokens(prefix, context)
            + sum(p.tokens for p in parts)
            + sum(self._headings_tokens(own, context) for own in inline)
        )

    # -- packing ------------------------------------------------------------------------

    def _budget(self, section: _Section, context: _Context) -> int:
        visible = self._visible(section.headings, context) if self.settings.heading_prefix else []
        prefix_tokens = self._headings_tokens(visible, context)
        # Keep at least half the budget for content even under very deep heading paths.
        return max(self.settings.size - prefix_tokens, self.settings.size // 2)

    def _pack(
        self, section: _Section, units: list[_Unit], context: _Context
    ) -> list[tuple[str, int]]:
        """The section's text in bodies that fit the budget, each with its token count."""
        budget = self._budget(section, context)
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

        bodies: list[tuple[str, int]] = []
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

    def _merge_small(
        self, pieces: list[_Piece], context: _Context, result: Chunking
    ) -> list[_Piece]:
        """Merge each prose piece under ``min_tokens`` with its neighbour while the
        result fits ``size``; tables and pieces on different sheets stay apart."""
        minimum = min(self.settings.min_tokens, self.settings.size // 2)
        if minimum <= 0:
            return pieces
        merged: list[_Piece] = []
        for piece in pieces:
            previous = merged[-1] if merged else None
            if (
                previous is not None
                and previous.kind == piece.kind == "text"
                and previous.sheet == piece.sheet
                and min(previous.tokens, piece.tokens) < minimum
            ):
                parts = [*previous.parts, *piece.parts]
                tokens = self._measure(parts, context)
                if tokens <= self.settings.size:
                    previous.parts, previous.tokens = parts, tokens
                    result.merged += 1
                    continue
            merged.append(piece)
        return merged


def _join(header: _Unit | None, units: list[_Unit], separator: str) -> tuple[str, int]:
    texts = [u.text for u in units]
    tokens = sum(u.tokens for u in units) + (header.tokens if header is not None else 0)
    return separator.join([header.text, *texts] if header is not None else texts), tokens


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


def _common_prefix(paths: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    first = paths[0]
    length = len(first)
    for path in paths[1:]:
        length = min(length, len(path))
        for i in range(length):
            if path[i] != first[i]:
                length = i
                break
    return first[:length]


def _drop_repeats(
    elements: list[Element], boilerplate: Boilerplate, result: Chunking
) -> list[Element]:
    """Content elements minus boilerplate and minus repeats of an earlier element of the
    same document (a disclaimer on every page). Titles are judged later, by position."""
    kept: list[Element] = []
    seen: set[int] = set()
    for element in elements:
        if element.category in ("Title", "Table"):
            kept.append(element)
            continue
        if element.text in boilerplate:
            result.boilerplate_dropped += 1
            continue
        if len(element.text) >= _REPEAT_MIN_CHARS:
            key = element_key(element.text)
            if key in seen:
                result.repeats_dropped += 1
                continue
            seen.add(key)
        kept.append(element)
    return kept


def _heads(title: Element, following: Element | None) -> bool:
    """Whether ``title`` is the heading of what follows (its text opens their path),
    rather than a line with no content of its own."""
    if following is None:
        return False
    depth = len(title.headings)
    path = following.headings
    return len(path) > depth and path[depth] == title.text[:200]


def _sections(
    elements: list[Element], boilerplate: Boilerplate, result: Chunking
) -> list[_Section]:
    sections: list[_Section] = []
    current: _Section | None = None
    for index, element in enumerate(elements):
        following = elements[index + 1] if index + 1 < len(elements) else None
        if element.category == "Title" and _heads(element, following):
            current = None  # a heading closes the running section; its path carries it
            continue
        if element.category == "Title" and element.text in boilerplate:
            result.boilerplate_dropped += 1  # a menu line seen across the collection
            continue
        if element.category == "Table":
            rows = _table_rows(element)
            header, body = (rows[0], rows[1:]) if len(rows) > 1 else (None, rows)
            sections.append(
                _Section("table", element.headings, element.page, element.sheet, body, header)
            )
            current = None
            continue
        # Prose, and title-like lines that head nothing (menus, slide titles): text.
        if (
            current is None
            or current.headings != element.headings
            or current.sheet != element.sheet
        ):
            current = _Section("text", element.headings, element.page, element.sheet, [])
            sections.append(current)
        current.units.extend(split_sentences(element.text))
    return [section for section in sections if section.units]


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
