"""Result cache: Redis when configured, in-process LRU otherwise.

Keys embed the collection's id (random, made when it was created) and its generation,
so any change to the collection (ingest, re-ingest, delete, drop and re-create) makes
every older entry unreachable; ``invalidate`` also drops them eagerly. A Redis outage
never fails a request: the cache is bypassed, counted, and retried after a short cool-down.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from ragline.settings import CacheSettings

log = logging.getLogger(__name__)


def normalise_query(query: str) -> str:
    return " ".join(query.lower().split())


def cache_key(
    collection: str, collection_id: str, generation: int, query: str, params: dict[str, Any]
) -> str:
    """The entry for a query against one state of one collection: a re-created collection
    of the same name has another id, so its generation 1 never meets the old one's."""
    payload = json.dumps([normalise_query(query), params], sort_keys=True, default=str)
    digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]
    return f"{_prefix(collection, collection_id)}{generation}:{digest}"


def _prefix(collection: str, collection_id: str | None = None) -> str:
    """Every entry of the collection's name, or of one collection by that name."""
    return f"ragline:result:{collection}:" + (f"{collection_id}:" if collection_id else "")


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0


class ResultCache(Protocol):
    stats: CacheStats

    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any]) -> None: ...

    def invalidate(self, collection: str, collection_id: str | None = None) -> None:
        """Drop the entries of every collection of this name, or of the one with this id."""

    @property
    def healthy(self) -> bool: ...


class InProcessCache:
    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.stats = CacheStats()
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def healthy(self) -> bool:
        return True

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < time.monotonic():
                self._entries.pop(key, None)
                self.stats.misses += 1
                return None
            self._entries.move_to_end(key)
            self.stats.hits += 1
            return entry[1]

    def set(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.settings.ttl_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.settings.max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, collection: str, collection_id: str | None = None) -> None:
        prefix = _prefix(collection, collection_id)
        with self._lock:
            for key in [k for k in self._entries if k.startswith(prefix)]:
                del self._entries[key]


class RedisCache:
    COOL_DOWN_S = 1.0

    def __init__(self, settings: CacheSettings) -> None:
        import redis

        assert settings.redis_url
        self.settings = settings
        self.stats = CacheStats()
        self._errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        self._down_until = 0.0
        self.last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self.stats.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._down_until = time.monotonic() + self.COOL_DOWN_S
        log.warning("result cache bypassed, Redis unavailable: %s", self.last_error)

    def get(self, key: str) -> dict[str, Any] | None:
        if not self._available():
            self.stats.misses += 1
            return None
        try:
            raw = self.client.get(key)
        except self._errors as exc:
            self._failed(exc)
            self.stats.misses += 1
            return None
        self.last_error = None
        if raw is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        value: dict[str, Any] = json.loads(raw)
        return value

    def set(self, key: str, value: dict[str, Any]) -> None:
        if not self._available():
            return
        try:
            self.client.set(key, json.dumps(value), ex=self.settings.ttl_s)
            self.last_error = None
        except self._errors as exc:
            self._failed(exc)

    def invalidate(self, collection: str, collection_id: str | None = None) -> None:
        pattern = _glob_escape(_prefix(collection, collection_id)) + "*"
        try:
            keys = list(self.client.scan_iter(match=pattern, count=500))
            if keys:
                self.client.delete(*keys)
        except self._errors as exc:
            self._failed(exc)

    def ping(self) -> bool:
        try:
            ok = bool(self.client.ping())
            self.last_error = None
            self._down_until = 0.0
            return ok
        except self._errors as exc:
            self._failed(exc)
            return False


def _glob_escape(text: str) -> str:
    """A literal for Redis' MATCH (collection names may hold none of these, but ids and
    future names should not turn into patterns)."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def make_cache(settings: CacheSettings) -> ResultCache:
    return RedisCache(settings) if settings.redis_url else InProcessCache(settings)
