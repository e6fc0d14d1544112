"""Embed commit groups in a Ray Data actor pool: one model per actor, batches by tokens.

Each row of the dataset is one batch of a group's chunks of about
``ray.embed_batch_tokens`` tokens (a batch never spans two groups), so a batch of long
chunks is not many times the work of a batch of short ones. Rows come back in order
(``preserve_order``), and a group is handed on as soon as its last batch is back: the
committer writes it while the actors go on with the next ones.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import ray.data
from ray.data import ActorPoolStrategy, DataContext

from ragline.ingest.distributed.cluster import ClusterShape
from ragline.ingest.embed import Embedder
from ragline.ingest.executor import Embedded
from ragline.ingest.types import Chunk, CommitGroup
from ragline.settings import EmbeddingSettings, RaySettings


def token_batches(chunks: Sequence[Chunk], budget: int) -> list[list[str]]:
    """Consecutive chunks' texts in batches of at most ``budget`` tokens (a longer chunk
    goes alone)."""
    batches: list[list[str]] = []
    tokens = budget  # start a new batch at the first chunk
    for chunk in chunks:
        if tokens + chunk.token_count > budget:
            batches.append([])
            tokens = 0
        batches[-1].append(chunk.text)
        tokens += chunk.token_count
    return batches


class EmbedActor:
    """Holds one model for the actor's lifetime; loaded when the actor starts."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        self.embedder = Embedder(settings)
        _ = self.embedder.model

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = []
        for texts in batch["texts"]:
            encoded = self.embedder.encode([str(text) for text in texts], bulk=True)
            vectors.append(encoded.tobytes())  # one binary cell per row: rows vary in length
        return {"group": batch["group"], "vectors": np.array(vectors, dtype=object)}


def pool_size(settings: RaySettings, cluster: ClusterShape) -> int:
    if settings.embed_actors:
        return settings.embed_actors
    return cluster.gpus or cluster.nodes


def embed_on_cluster(
    groups: Sequence[CommitGroup],
    embedding: EmbeddingSettings,
    settings: RaySettings,
    cluster: ClusterShape,
) -> Iterator[Embedded]:
    """The groups with their vectors, in the order given."""
    rows: list[dict[str, Any]] = [
        {"group": index, "texts": texts}
        for index, group in enumerate(groups)
        for texts in token_batches(group.chunks, settings.embed_batch_tokens)
    ]
    if not rows:
        return
    context = DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # ragline draws its own
    size = min(pool_size(settings, cluster), len(rows))
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        EmbedActor,
        fn_constructor_kwargs={"settings": embedding},
        batch_size=1,
        batch_format="numpy",
        compute=ActorPoolStrategy(min_size=1, max_size=size),
        # One GPU per actor when the cluster has GPUs, else one CPU.
        num_gpus=1 if cluster.gpus else None,
        num_cpus=None if cluster.gpus else 1,
    )
    batches = Counter(int(row["group"]) for row in rows)
    started = time.perf_counter()
    current, parts = 0, []
    for row in dataset.iter_rows():
        assert int(row["group"]) == current, "rows come back in order"
        parts.append(np.frombuffer(row["vectors"], dtype=np.float32))
        if len(parts) == batches[current]:
            group = groups[current]
            vectors = np.concatenate(parts).reshape(len(group.chunks), -1)
            # Time the committer waited for this group: the actors go on meanwhile.
            yield Embedded(group, vectors, time.perf_counter() - started)
            started, current, parts = time.perf_counter(), current + 1, []
