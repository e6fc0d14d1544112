"""The long-lived components one app shares, built once at startup from the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ragline.api.admission import Admission, Lease, Overloaded
from ragline.api.auth import KeyRing, Principal
from ragline.api.errors import ApiError, not_found
from ragline.api.jobs import JobRunner, make_store
from ragline.api.metrics import LiveState, Metrics
from ragline.generate.engine import GenerationEngine
from ragline.generate.rag import RagGenerator
from ragline.ingest.collection import CollectionError
from ragline.retrieve.cache import RedisCache, ResultCache, make_cache
from ragline.service.collections import CollectionService
from ragline.service.components import Components
from ragline.service.ingest_process import PrepareIngest
from ragline.service.registry import CollectionRegistry, OpenCollection
from ragline.settings import Settings

EngineFactory = Callable[[Components], GenerationEngine]


def start_engine(components: Components) -> GenerationEngine:
    return components.start_engine()


@dataclass(slots=True)
class Services:
    settings: Settings
    components: Components
    engine: GenerationEngine
    generator: RagGenerator
    cache: ResultCache
    collections: CollectionService
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
    settings: Settings,
    engine_factory: EngineFactory,
    metrics: Metrics,
    prepare_ingest: PrepareIngest | None = None,
) -> Services:
    """Start everything; the engine inside the running loop (vLLM's AsyncLLM needs it)."""
    components = Components(settings)
    embedder = components.embedder
    # Load the models and settle their runtimes (timed once per machine) before serving.
    await asyncio.to_thread(lambda: embedder.runtime)
    if components.reranker_available:
        reranker = components.reranker()
        await asyncio.to_thread(lambda: reranker.runtime)
    cache = make_cache(settings.cache)
    engine = engine_factory(components)
    collections = CollectionService(components, cache)
    jobs = JobRunner(
        make_store(settings), collections, metrics, settings.api.ingest_jobs, prepare_ingest
    )
    api = settings.api
    services = Services(
        settings=settings,
        components=components,
        engine=engine,
        generator=RagGenerator(engine, settings.generation, encode=embedder.encode),
        cache=cache,
        collections=collections,
        registry=CollectionRegistry(collections, cache),
        jobs=jobs,
        admission=Admission(api.max_active_generations, api.max_queued, api.queue_timeout_s),
        keys=KeyRing(api.keys),
        metrics=metrics,
    )
    metrics.attach(services.live_state())
    jobs.start()
    return services
