"""Persistent embedding cache keyed by (model, text): sweeps and re-indexing that
produce chunks seen before skip the model for them."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np

from ragline.ingest.embed import Embedder
from ragline.settings import EmbeddingSettings


class CachingEmbedder(Embedder):
    def __init__(
        self, settings: EmbeddingSettings, cache_path: Path, export_dir: Path | None = None
    ) -> None:
        super().__init__(settings, export_dir)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(cache_path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)"
        )
        self.hits = 0
        self.misses = 0

    def _key(self, text: str) -> str:
        # The runtime and its export too: int8 vectors are close to fp32 ones, not equal.
        key = f"{self.settings.model}\x00{self.vectors_id}\x00{text}"
        return hashlib.sha256(key.encode()).hexdigest()

    def encode(self, texts: list[str], *, bulk: bool = False) -> np.ndarray:
        keys = [self._key(text) for text in texts]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            rows = self.conn.execute(
                f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(batch))})",
                batch,
            ).fetchall()
            found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        missing = [i for i, key in enumerate(keys) if key not in found]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            vectors = super().encode([texts[i] for i in missing], bulk=bulk)
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT OR REPLACE INTO vectors(key, vector) VALUES (?, ?)",
                [(keys[i], vectors[j].tobytes()) for j, i in enumerate(missing)],
            )
            self.conn.execute("COMMIT")
            for j, i in enumerate(missing):
                found[keys[i]] = vectors[j]
        if not texts:
            return super().encode([])
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)
