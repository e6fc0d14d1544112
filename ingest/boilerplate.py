"""Navigation boilerplate: short elements that repeat verbatim across documents.

Web pages carry the same menus, footers and link lists on every page. Within one page they
look like content (unstructured marks menu lines as titles); across a collection they give
themselves away by repeating. An element is boilerplate when its normalised text is short
(``boilerplate_max_chars``) and occurs in at least ``boilerplate_min_documents`` documents,
counted over the documents of the ingest batch plus those already stored (each document's
keys are kept in the docstore, so uploads that arrive one file at a time are counted too).
Long elements never qualify: two versions of a report share paragraphs that must stay.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ragline.ingest.types import ParsedDocument


def element_key(text: str) -> int:
    """A 64-bit key of the case- and whitespace-normalised text (SQLite INTEGER-sized)."""
    normalised = " ".join(text.split()).lower()
    digest = hashlib.blake2b(normalised.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def candidate_keys(document: ParsedDocument, max_chars: int) -> frozenset[int]:
    """Keys of the document's elements short enough to be boilerplate (tables excluded:
    a repeated header row is data)."""
    return frozenset(
        element_key(element.text)
        for element in document.elements
        if element.category != "Table" and 0 < len(element.text.strip()) <= max_chars
    )


@dataclass(slots=True, frozen=True)
class Boilerplate:
    """The boilerplate keys in force for a group of documents."""

    keys: frozenset[int] = frozenset()

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and bool(self.keys) and element_key(text) in self.keys

    def __len__(self) -> int:
        return len(self.keys)


NO_BOILERPLATE = Boilerplate()


def find_boilerplate(
    window: Sequence[frozenset[int]],
    stored_counts: dict[int, int],
    min_documents: int,
) -> Boilerplate:
    """Keys occurring in at least ``min_documents`` documents: those of ``window`` (each a
    document's candidate keys) plus ``stored_counts`` (documents already in the
    collection, excluding the ones ``window`` replaces)."""
    if min_documents <= 0:
        return NO_BOILERPLATE
    counts: Counter[int] = Counter(stored_counts)
    for keys in window:
        counts.update(keys)
    return Boilerplate(frozenset(key for key, n in counts.items() if n >= min_documents))


def all_keys(window: Iterable[frozenset[int]]) -> set[int]:
    found: set[int] = set()
    for keys in window:
        found |= keys
    return found
