"""Where the parallel stages run: parsing files and embedding commit groups.

The pipeline keeps what depends on the collection (skipping known files, boilerplate,
chunking, the single committer) and hands these two stages to an executor. The local
one uses a process pool and this process's model; ``ingest.executor: ray`` runs them
on a Ray cluster (``ragline.ingest.distributed``, imported only then: the ``ray``
extra is optional).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ragline.ingest.embed import Embedder
from ragline.ingest.parallel import parse_files
from ragline.ingest.types import CommitGroup, ParsedDocument
from ragline.settings import ParsingSettings, Settings


@dataclass(slots=True)
class Embedded:
    """A commit group with one vector per chunk, in chunk order."""

    group: CommitGroup
    vectors: np.ndarray
    seconds: float  # embedding time attributed to this group


class IngestExecutor(Protocol):
    name: str

    def parse(
        self, paths: Sequence[Path], settings: ParsingSettings, roots: Sequence[str] | None
    ) -> Iterator[ParsedDocument]:
        """Every path's document (an error row for a file that fails), in any order."""
        ...

    def embed(self, groups: Iterable[CommitGroup]) -> Iterator[Embedded]:
        """The groups with their vectors, in the order given."""
        ...


class LocalExecutor:
    name = "local"

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def parse(
        self, paths: Sequence[Path], settings: ParsingSettings, roots: Sequence[str] | None
    ) -> Iterator[ParsedDocument]:
        return parse_files(paths, settings, roots)

    def embed(self, groups: Iterable[CommitGroup]) -> Iterator[Embedded]:
        for group in groups:  # lazily: a group is embedded as soon as it is chunked
            started = time.perf_counter()
            vectors = self.embedder.encode(group.texts, bulk=True)  # queries go first
            yield Embedded(group, vectors, time.perf_counter() - started)


class ExecutorUnavailable(RuntimeError):
    """The configured executor's extra is not installed."""


def make_executor(settings: Settings, embedder: Embedder) -> IngestExecutor:
    if settings.ingest.executor == "ray":
        try:
            from ragline.ingest.distributed.executor import RayExecutor
        except ImportError as exc:
            raise ExecutorUnavailable(
                f"the ray executor needs Ray ({exc}): pip install 'ragline[ray]'"
            ) from None
        return RayExecutor(settings)
    return LocalExecutor(embedder)
