"""The floor: a bare sentence-transformers encode loop and a bare FAISS search."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class Searchable(Protocol):
    def search(self, queries: Any, k: int) -> Any: ...


def encode_rate(model: SentenceTransformer, texts: Sequence[str], batch_size: int) -> float:
    """Texts/s of ``model.encode`` over all ``texts`` (normalised, as ragline stores them)."""
    started = time.perf_counter()
    model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return len(texts) / (time.perf_counter() - started)


def searcher(model: SentenceTransformer, index: Searchable, k: int) -> Callable[[str], object]:
    """One query: encode, then FAISS top k (ragline's own index), nothing else."""

    def run(query: str) -> object:
        vector = model.encode([query], normalize_embeddings=True, convert_to_numpy=True)
        return index.search(vector, k)

    return run
