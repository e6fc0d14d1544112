"""Prometheus metrics, in a registry of the app's own (two apps in one process never
clash). Counters and histograms are updated on the request path; gauges that mirror live
state (queues, caches, Redis) are read at scrape time by a collector."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
TOKEN_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2)


@dataclass(slots=True)
class LiveState:
    """Read at scrape time; each callable is cheap or already in a worker thread."""

    generation_active: Callable[[], int]
    generation_queued: Callable[[], int]
    engine_unfinished: Callable[[], int]
    cache_stats: Callable[[], tuple[int, int, int]]  # hits, misses, errors
    redis_up: Callable[[], bool | None]  # None: Redis not configured
    ingest_queue: Callable[[], int]
    ingest_progress: Callable[[], tuple[int, int]]  # files done, files total (running jobs)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ragline_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.errors = Counter(
            "ragline_request_errors",
            "Requests answered with an error status, or failed mid-stream (status=stream)",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "ragline_request_seconds",
            "End-to-end request latency (to the last byte)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "ragline_ttft_seconds",
            "Request received to first answer token",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "ragline_tpot_seconds",
            "Mean time per output token after the first",
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "ragline_stage_seconds",
            "Latency of one stage of answering a question",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "ragline_prompt_tokens", "Prompt tokens sent to the engine", registry=r
        )
        self.cached_prompt_tokens = Counter(
            "ragline_cached_prompt_tokens",
            "Prompt tokens served from the KV prefix cache",
            registry=r,
        )
        self.completion_tokens = Counter(
            "ragline_completion_tokens", "Tokens generated", registry=r
        )
        self.rejected = Counter(
            "ragline_rejected", "Generations refused by admission control (429)", registry=r
        )
        self.disconnects = Counter(
            "ragline_client_disconnects",
            "Answers aborted because the client went away",
            registry=r,
        )
        self.ingested_files = Counter(
            "ragline_ingest_files",
            "Files processed by ingestion jobs, by outcome",
            ["status"],
            registry=r,
        )
        self.prompt_total = 0  # mirrors of the token counters, for the hit ratio
        self.cached_total = 0

    def observe_generation(self, prompt: int, cached: int, completion: int, tpot_s: float) -> None:
        self.prompt_total += prompt
        self.cached_total += cached
        self.prompt_tokens.inc(prompt)
        self.cached_prompt_tokens.inc(cached)
        self.completion_tokens.inc(completion)
        if completion > 1:
            self.tpot.observe(tpot_s)

    def observe_retrieval(self, stages_ms: dict[str, float], seconds: float) -> None:
        """The whole retrieval, and the rerank and compress stages within it."""
        self.stage.labels("retrieve").observe(seconds)
        for name in ("rerank", "compress"):
            spent = sum(v for k, v in stages_ms.items() if k.endswith(name))
            if spent:
                self.stage.labels(name).observe(spent / 1e3)

    def attach(self, live: LiveState) -> None:
        self.registry.register(_LiveCollector(live, self))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    def __init__(self, live: LiveState, metrics: Metrics) -> None:
        self.live = live
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families are built at scrape time

    def collect(self) -> Iterator[Metric]:
        live = self.live

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield gauge("ragline_generation_active", "Answers streaming now", live.generation_active())
        yield gauge(
            "ragline_generation_queue_depth", "Answers waiting for a slot", live.generation_queued()
        )
        yield gauge(
            "ragline_engine_unfinished_requests", "Requests vLLM holds", live.engine_unfinished()
        )
        hits, misses, errors = live.cache_stats()
        lookups = CounterMetricFamily(
            "ragline_result_cache_lookups", "Result-cache lookups", labels=["result"]
        )
        lookups.add_metric(["hit"], hits)
        lookups.add_metric(["miss"], misses)
        yield lookups
        yield CounterMetricFamily(
            "ragline_result_cache_errors", "Result-cache operations that failed", value=errors
        )
        yield gauge(
            "ragline_result_cache_hit_ratio",
            "Result-cache hits / lookups",
            hits / (hits + misses) if hits + misses else 0.0,
        )
        prompt, cached = self.metrics.prompt_total, self.metrics.cached_total
        yield gauge(
            "ragline_kv_prefix_cache_hit_ratio",
            "Prompt tokens served from vLLM's prefix cache / prompt tokens",
            cached / prompt if prompt else 0.0,
        )
        yield gauge("ragline_ingest_queue_depth", "Ingestion jobs waiting", live.ingest_queue())
        done, total = live.ingest_progress()
        progress = GaugeMetricFamily(
            "ragline_ingest_job_files", "Files of the running ingestion jobs", labels=["state"]
        )
        progress.add_metric(["done"], done)
        progress.add_metric(["total"], total)
        yield progress
        up = live.redis_up()
        if up is not None:
            yield gauge("ragline_redis_up", "1 when Redis answers, 0 when it is down", float(up))
