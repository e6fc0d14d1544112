"""The result cache against the real Redis at 127.0.0.1:6379, and without it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis

from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.retrieve.cache import InProcessCache, RedisCache, cache_key, make_cache
from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import RetrievalRequest
from ragline.settings import CacheSettings, Settings, load_settings

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_settings() -> CacheSettings:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.fail("the Redis server at 127.0.0.1:6379 must be running for these tests")
    return CacheSettings(redis_url=REDIS_URL, ttl_s=60)


def _doc(source: str, text: str) -> ParsedDocument:
    return ParsedDocument(source, f"h:{text}", len(text), "TXT", [Element(text, "NarrativeText")])


@pytest.mark.redis
def test_redis_cache_roundtrip_and_invalidate(redis_settings: CacheSettings) -> None:
    cache = RedisCache(redis_settings)
    collection = f"test-{uuid.uuid4().hex[:8]}"
    key = cache_key(collection, "id1", 3, "What is BM25?", {"top_k": 5})
    assert cache_key(collection, "id1", 3, "  what is   bm25? ", {"top_k": 5}) == key
    assert cache_key(collection, "id1", 4, "What is BM25?", {"top_k": 5}) != key
    # The same name and generation in a re-created collection (another id): another key.
    assert cache_key(collection, "id2", 3, "What is BM25?", {"top_k": 5}) != key
    assert cache.get(key) is None
    cache.set(key, {"passages": [{"chunk_id": 1}]})
    assert cache.get(key) == {"passages": [{"chunk_id": 1}]}
    assert cache.client.ttl(key) > 0
    cache.invalidate(collection)
    assert cache.get(key) is None
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)


@pytest.mark.redis
def test_retriever_with_redis_is_invalidated_by_reingest(
    redis_settings: CacheSettings, tmp_path: Path, embedder: Embedder
) -> None:
    settings: Settings = load_settings(storage={"data_dir": tmp_path}, cache=redis_settings)
    name = f"redis-{uuid.uuid4().hex[:8]}"
    collection = Collection.open(
        settings.storage.collections_dir, name, settings.index, create=True
    )
    pipeline = IngestPipeline(settings, collection, embedder=embedder)
    pipeline.ingest_documents(
        [
            _doc("x.txt", "Redis keeps the cache in memory."),
            _doc("y.txt", "FAISS searches dense vectors."),
        ]
    )
    cache = make_cache(settings.cache)
    assert isinstance(cache, RedisCache)
    retriever = Retriever(settings, collection, embedder, cache=cache)
    request = RetrievalRequest("where is the cache kept?", top_k=1, compress=False)
    assert not retriever.run(request).cache_hit
    # A second process with its own retriever shares the Redis entry.
    other = Retriever(
        settings,
        Collection.open(settings.storage.collections_dir, name, settings.index),
        embedder,
        cache=RedisCache(settings.cache),
    )
    shared = other.run(request)
    assert shared.cache_hit and shared.passages[0].source == "x.txt"

    pipeline.ingest_documents([_doc("x.txt", "Redis keeps the cache in RAM, updated.")])
    fresh = other.run(request)
    assert not fresh.cache_hit and "updated" in fresh.passages[0].text
    cache.invalidate(name)


def test_unreachable_redis_is_bypassed_not_fatal(tmp_path: Path, embedder: Embedder) -> None:
    down = CacheSettings(redis_url="redis://127.0.0.1:6390/0")  # nothing listens there
    cache = RedisCache(down)
    cache.set("k", {"v": 1})
    assert cache.get("k") is None
    assert not cache.healthy and cache.stats.errors >= 1
    settings = load_settings(storage={"data_dir": tmp_path})
    collection = Collection.open(settings.storage.collections_dir, "d", settings.index, create=True)
    IngestPipeline(settings, collection, embedder=embedder).ingest_documents(
        [_doc("z.txt", "Retrieval keeps working when the cache is down.")]
    )
    result = Retriever(settings, collection, embedder, cache=cache).run(
        RetrievalRequest("does retrieval work without a cache?", top_k=1, compress=False)
    )
    assert result.passages[0].source == "z.txt" and not result.cache_hit


def test_default_cache_is_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert isinstance(make_cache(load_settings().cache), InProcessCache)
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    assert load_settings().cache.redis_url == REDIS_URL
