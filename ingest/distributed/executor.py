"""``ingest.executor: ray``: parsing as Ray tasks, embedding in a Ray Data actor pool."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path

from ragline.ingest.distributed.cluster import ClusterShape, connect
from ragline.ingest.distributed.embed import embed_on_cluster
from ragline.ingest.distributed.parse import parse_on_cluster
from ragline.ingest.executor import Embedded
from ragline.ingest.types import CommitGroup, ParsedDocument
from ragline.settings import ParsingSettings, Settings


class RayExecutor:
    name = "ray"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def cluster(self) -> ClusterShape:
        """Connected on first use: a re-run that finds every file unchanged needs no Ray."""
        return connect(self.settings.ray)

    def parse(
        self, paths: Sequence[Path], settings: ParsingSettings, roots: Sequence[str] | None
    ) -> Iterator[ParsedDocument]:
        if not paths:
            return iter(())
        return parse_on_cluster(paths, settings, roots, slots=self.cluster.cpus)

    def embed(self, groups: Iterable[CommitGroup]) -> Iterator[Embedded]:
        # A window's groups are chunked before any is embedded, so that the actors
        # get them all at once.
        chunked = list(groups)
        if not chunked:
            return iter(())
        return embed_on_cluster(chunked, self.settings.embedding, self.settings.ray, self.cluster)
