"""Typed request/response records of the query path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[Mode, ...] = ("dense", "bm25", "hybrid")


@dataclass(slots=True)
class MetadataFilter:
    """Restricts candidates before the final top-k. Empty fields do not filter."""

    sources: list[str] = field(default_factory=list)  # exact sources or fnmatch patterns
    # File names or their patterns, matched against the last part of a source only:
    # what a client who sees file names (never server paths) may filter by.
    names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # "text", "table"
    file_types: list[str] = field(default_factory=list)  # "PDF", "DOCX", ...
    ingested_after: float | None = None  # unix seconds
    ingested_before: float | None = None

    def is_empty(self) -> bool:
        return not (
            self.sources
            or self.names
            or self.categories
            or self.file_types
            or self.ingested_after is not None
            or self.ingested_before is not None
        )


@dataclass(slots=True)
class RetrievalRequest:
    query: str
    top_k: int | None = None  # default: settings.retrieval.top_k
    rerank: bool | None = None  # default: settings.rerank.enabled
    rerank_depth: int | None = None
    mode: Mode = "hybrid"
    filters: MetadataFilter = field(default_factory=MetadataFilter)
    compress: bool | None = None  # default: settings.compression.enabled
    token_budget: int | None = None
    use_cache: bool = True

    def cache_params(self) -> dict[str, Any]:
        return asdict(self) | {"query": None, "use_cache": None}


@dataclass(slots=True)
class Passage:
    chunk_id: int
    text: str
    source: str
    score: float  # final score: rerank score when reranked, else fused score
    position: int
    category: str
    page: int | None = None
    sheet: str | None = None
    headings: tuple[str, ...] = ()
    dense_score: float | None = None
    bm25_score: float | None = None
    rerank_score: float | None = None


@dataclass(slots=True)
class CompressedContext:
    passages: list[int]  # chunk ids that kept sentences, in passage order
    snippets: list[str]  # each such passage's kept sentences, aligned with ``passages``
    tokens_in: int
    tokens_out: int

    @property
    def text(self) -> str:
        return "\n\n".join(self.snippets)


@dataclass(slots=True)
class StageTimings:
    """Milliseconds per stage for one request."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] = self.stages.get(stage, 0.0) + (time.perf_counter() - started) * 1e3


@dataclass(slots=True)
class RetrievalResult:
    query: str
    passages: list[Passage]
    timings: StageTimings
    cache_hit: bool = False
    context: CompressedContext | None = None
    collection_generation: int = 0
    rewrite: str | None = None  # a follow-up's query rewritten with the conversation
