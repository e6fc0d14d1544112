"""Reading citations ([n], [n, m], [n-m]) back out of a generated answer."""

from __future__ import annotations

import re
from collections.abc import Iterable

_BRACKET = re.compile(r"\[(\d+(?:\s*[-\u2013,]\s*\d+)*)\]")
MAX_SOURCE_NUMBER = 200  # retrieval.top_k's ceiling: larger numbers are not citations
_PART = re.compile(r"(\d+)(?:\s*[-\u2013]\s*(\d+))?")


def cited_numbers(text: str, valid: Iterable[int] | None = None) -> list[int]:
    """Source numbers cited in ``text``, in order of first citation, without repeats.

    Numbers outside ``valid`` (a model citing a source it was not given) are dropped.
    """
    allowed = set(valid) if valid is not None else None
    seen: dict[int, None] = {}
    for match in _BRACKET.finditer(text):
        for part in _PART.finditer(match.group(1)):
            first = int(part.group(1))
            last = int(part.group(2)) if part.group(2) else first
            if last < first or last > MAX_SOURCE_NUMBER:  # "[1990-2020]" is a year range
                continue
            for number in range(first, last + 1):
                if allowed is None or number in allowed:
                    seen.setdefault(number, None)
    return list(seen)
