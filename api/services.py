"""The long-lived components one app shares, built once at startup from the settings."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from api.admission import Admission, Lease, Overloaded
from api.auth import KeyRing, Principal
from api.errors import ApiError, not_found
from api.jobs import JobRunner, make_job_store
from api.metrics import LiveState, Metrics
from api.registry import CollectionRegistry, OpenCollection
from generate.engine import GenerationEngine
from generate.rag import RagGenerator
from ingest.collection import CollectionError
from ingest.embed import Embedder
from ragline.settings import EmbeddingSettings, Settings
from retrieve.cache import RedisCache, ResultCache, make_cache
from retrieve.rerank import CrossEncoderReranker, resolve_reranker_path

log = logging.getLogger(__name__)

EngineFactory = Callable[[Settings], GenerationEngine]


class SharedEmbedder(Embedder):
    """One model for queries, ingestion jobs and /v1/embeddings, one call at a time:
    a Hugging Face fast tokenizer must not be used from two threads at once."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return super().encode(texts)

    def count_tokens(self, texts: list[str]) -> int:
        with self._lock:
            tokenizer = self.model.tokenizer
            return sum(len(ids) for ids in tokenizer(texts)["input_ids"])


def start_engine(settings: Settings) -> GenerationEngine:
    return GenerationEngine.start(settings.generation, settings.models_dir)


def _reranker(settings: Settings) -> CrossEncoderReranker | None:
    """Loaded lazily on first use; None when its model is missing (requests asking for
    reranking are then refused with a clear message)."""
    try:
        resolve_reranker_path(settings.rerank.model, settings.models_dir)
    except (FileNotFoundError, ValueError) as exc:
        level = logging.WARNING if settings.rerank.enabled else logging.INFO
        log.log(level, "reranking unavailable: %s", exc)
        return None
    return CrossEncoderReranker(settings.rerank, settings.models_dir)


@dataclass(slots=True)
class Services:
    settings: Settings
    engine: GenerationEngine
    generator: RagGenerator
    embedder: SharedEmbedder
    cache: ResultCache
    registry: CollectionRegistry
    jobs: JobRunner
    admission: Admission
    keys: KeyRing
    metrics: Metrics

    @property
    def model_id(self) -> str:
        """The generation model as /v1/models lists it."""
        return self.settings.generation.model

    # -- request helpers ----------------------------------------------------------------

    def collection(self, name: str, principal: Principal) -> OpenCollection:
        """The open collection, or 404 for one that is missing or not this key's."""
        if not principal.can_use(name):
            raise not_found(f"collection {name!r}", param="collection")
        try:
            return self.registry.get(name)
        except CollectionError:
            raise not_found(f"collection {name!r}", param="collection") from None

    async def admit(self) -> Lease:
        try:
            return await self.admission.acquire()
        except Overloaded as exc:
            self.metrics.rejected.inc()
            retry = str(self.settings.api.retry_after_s)
            raise ApiError(
                429,
                f"the server is at capacity ({exc}); retry after {retry} s",
                code="rate_limit_exceeded",
                headers={"Retry-After": retry},
            ) from None

    def redis_status(self) -> Literal["ok", "down", "unused"]:
        """Pings Redis (blocking up to its 0.5 s timeout): call from a worker thread."""
        if not isinstance(self.cache, RedisCache):
            return "unused"
        return "ok" if self.cache.ping() else "down"

    def live_state(self) -> LiveState:
        def cache_stats() -> tuple[int, int, int]:
            stats = self.cache.stats
            return stats.hits, stats.misses, stats.errors

        def redis_up() -> bool | None:
            status = self.redis_status()
            return None if status == "unused" else status == "ok"

        return LiveState(
            generation_active=lambda: self.admission.active,
            generation_queued=lambda: self.admission.queued,
            engine_unfinished=self.engine.num_unfinished_requests,
            cache_stats=cache_stats,
            redis_up=redis_up,
            ingest_queue=self.jobs.store.pending,
            ingest_progress=self.jobs.progress,
        )

    async def close(self) -> None:
        await self.jobs.stop()
        await asyncio.to_thread(self.registry.close)
        self.engine.shutdown()


async def build_services(
    settings: Settings, engine_factory: EngineFactory, metrics: Metrics
) -> Services:
    """Start everything; the engine inside the running loop (vLLM's AsyncLLM needs it)."""
    embedder = SharedEmbedder(settings.embedding)
    await asyncio.to_thread(lambda: embedder.dimension)  # load the model before serving
    cache = make_cache(settings.cache)
    engine = engine_factory(settings)
    registry = CollectionRegistry(settings, embedder, cache, _reranker(settings))
    jobs = JobRunner(settings, make_job_store(settings), embedder, cache, metrics)
    api = settings.api
    services = Services(
        settings=settings,
        engine=engine,
        generator=RagGenerator(engine, settings.generation, encode=embedder.encode),
        embedder=embedder,
        cache=cache,
        registry=registry,
        jobs=jobs,
        admission=Admission(api.max_active_generations, api.max_queued, api.queue_timeout_s),
        keys=KeyRing(api.keys),
        metrics=metrics,
    )
    metrics.attach(services.live_state())
    jobs.start()
    return services
