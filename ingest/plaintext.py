"""Large plain-text files, read as a stream of paragraphs.

unstructured's text partitioner classifies every paragraph with NLP heuristics and keeps
a heavy object per paragraph: a 20 MiB file takes it ten minutes and close to 1 GB. Above
``parsing.stream_text_mb`` ragline reads the file in blocks itself, splits it at blank
lines and packs paragraphs into elements of about ``ELEMENT_CHARS`` characters (the
chunker cuts them to tokens anyway), so time is linear and memory about the text itself.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

from ragline.ingest.types import Element

ELEMENT_CHARS = 4000
_BLOCK = 1 << 20
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")


def _encoding(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4)
    return next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")


def _paragraphs(path: Path) -> Iterator[str]:
    """The file's paragraphs (text between blank lines), whitespace-normalised."""
    decoder = codecs.getincrementaldecoder(_encoding(path))(errors="replace")
    pending = ""
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            pending += decoder.decode(block).replace("\r\n", "\n").replace("\r", "\n")
            parts = _BLANK_LINE.split(pending)
            pending = parts.pop()
            yield from parts
            while len(pending) > ELEMENT_CHARS * 4:  # a paragraph without end: cut it
                cut = pending.rfind(" ", 0, ELEMENT_CHARS * 2) + 1 or ELEMENT_CHARS * 2
                yield pending[:cut]
                pending = pending[cut:]
    yield pending + decoder.decode(b"", final=True)


def stream_text(path: Path) -> Iterator[Element]:
    """Elements of about ELEMENT_CHARS characters, paragraphs kept whole where they fit."""
    packed: list[str] = []
    size = 0
    for raw in _paragraphs(path):
        paragraph = " ".join(raw.split())
        while len(paragraph) > ELEMENT_CHARS:
            cut = paragraph.rfind(" ", 0, ELEMENT_CHARS) + 1 or ELEMENT_CHARS
            yield Element(paragraph[:cut].strip(), "NarrativeText")
            paragraph = paragraph[cut:]
        if not paragraph:
            continue
        if packed and size + len(paragraph) > ELEMENT_CHARS:
            yield Element("\n\n".join(packed), "NarrativeText")
            packed, size = [], 0
        packed.append(paragraph)
        size += len(paragraph) + 2
    if packed:
        yield Element("\n\n".join(packed), "NarrativeText")
