"""The one place that builds ragline's components from the settings.

The CLI, the HTTP API and the benchmarks all get their embedder, reranker, retrievers and
generation engine here, so a component is configured one way whoever uses it.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING

from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.retrieve.cache import ResultCache
from ragline.retrieve.dense import QueryEncoder
from ragline.retrieve.rerank import CrossEncoderReranker
from ragline.retrieve.retriever import Reranker, Retriever
from ragline.settings import Settings

if TYPE_CHECKING:
    from ragline.generate.engine import GenerationEngine

log = logging.getLogger(__name__)


class RerankerUnavailable(Exception):
    """Reranking was asked for but its model is not installed; the message says how."""


class Components:
    """Builds each shared component once, on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(self.settings.embedding, self.settings.storage.export_dir)

    @cached_property
    def _reranker(self) -> CrossEncoderReranker | RerankerUnavailable:
        try:
            return CrossEncoderReranker(
                self.settings.rerank, self.settings.models_dir, self.settings.storage.export_dir
            )
        except (FileNotFoundError, ValueError) as exc:
            level = logging.WARNING if self.settings.rerank.enabled else logging.INFO
            log.log(level, "reranking unavailable: %s", exc)
            return RerankerUnavailable(str(exc))

    def runtimes(self) -> dict[str, dict[str, object]]:
        """The runtime each encoder loaded so far chose (none is loaded for this)."""
        found = {}
        if "embedder" in self.__dict__ and self.embedder.runtime_chosen:
            found["embedding"] = self.embedder.runtime.summary()
        reranker = self.__dict__.get("_reranker")
        if isinstance(reranker, CrossEncoderReranker) and reranker.runtime_chosen:
            found["rerank"] = reranker.runtime.summary()
        return found

    @property
    def reranker_available(self) -> bool:
        return isinstance(self._reranker, CrossEncoderReranker)

    def reranker(self) -> CrossEncoderReranker:
        """The cross-encoder (its weights load on first score); RerankerUnavailable when
        ``rerank.model`` is not installed."""
        if isinstance(self._reranker, RerankerUnavailable):
            raise self._reranker
        return self._reranker

    def optional_reranker(self) -> CrossEncoderReranker | None:
        return self._reranker if isinstance(self._reranker, CrossEncoderReranker) else None

    def retriever(
        self,
        collection: Collection,
        *,
        reranker: Reranker | None = None,
        cache: ResultCache | None = None,
        query_encoder: QueryEncoder | None = None,
    ) -> Retriever:
        """A retriever over ``collection`` with the shared embedder; ``reranker`` defaults
        to the installed cross-encoder, if any."""
        return Retriever(
            self.settings,
            collection,
            self.embedder,
            reranker=reranker if reranker is not None else self.optional_reranker(),
            cache=cache,
            query_encoder=query_encoder,
        )

    def start_engine(self) -> GenerationEngine:
        from ragline.generate.engine import GenerationEngine

        return GenerationEngine.start(self.settings.generation, self.settings.models_dir)
