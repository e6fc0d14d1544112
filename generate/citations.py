"""Citations: the ones a model writes ([n], [n, m], [n-m]), and similarity-based
attribution for models that write none."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ragline.ingest.chunk import split_sentences

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


def attribute(
    answer: str,
    source_texts: Sequence[str],
    encode: Callable[[list[str]], np.ndarray],
    threshold: float,
    min_chars: int = 20,
) -> list[int]:
    """Indices of the sources that answer sentences draw on, by embedding similarity.

    For models that do not write ``[n]`` themselves (small ones rarely do): each answer
    sentence is attributed to its most similar source when the cosine reaches
    ``threshold``. Indices are in order of first attribution, without repeats.
    """
    sentences = [s for s in split_sentences(answer) if len(s) >= min_chars]
    if not sentences or not source_texts:
        return []
    vectors = encode([*sentences, *source_texts])
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = vectors[: len(sentences)] @ vectors[len(sentences) :].T
    seen: dict[int, None] = {}
    for row in similarity:
        best = int(np.argmax(row))
        if row[best] >= threshold:
            seen.setdefault(best, None)
    return list(seen)
