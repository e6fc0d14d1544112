"""Fault tolerance and hostile input (issue 12): stale caches, bad input that must be a
4xx, names and paths that must be refused, crashes that must not lose work.

The app runs under uvicorn in a thread with the scripted engine of test_api_fast; other
processes (the CLI, a second server) change the data behind its back where the defect
needs them. A private redis-server stands in for Redis (never the shared one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import REPO, PrivateRedis, ragline_command, serve_in_thread
from test_api_fast import FakeEngine

from ragline.api.app import create_app
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.settings import Settings, load_settings


def _doc(source: str, text: str) -> ParsedDocument:
    return ParsedDocument(source, f"h:{text}", len(text), "TXT", [Element(text, "NarrativeText")])


def _settings(data: Path, redis_url: str | None = None, **sections: Any) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("REDIS_URL", raising=False)
        return load_settings(
            storage={"data_dir": data},
            cache={"redis_url": redis_url or "off"},
            generation={"max_tokens": 16},
            parsing={"workers": 1, "file_timeout_s": 60},
            **sections,
        )


def _ingest(settings: Settings, name: str, docs: list[ParsedDocument], embedder: Embedder) -> None:
    collection = Collection.open(settings.storage.collections_dir, name, settings.index, True)
    try:
        IngestPipeline(settings, collection, embedder=embedder).ingest_documents(docs)
    finally:
        collection.close()


def _cli(data: Path, redis_url: str | None, *args: str) -> None:
    """``ragline <args>`` in a process of its own, running this checkout's code."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "RAGLINE_STORAGE__DATA_DIR": str(data),
        "RAGLINE_CACHE__REDIS_URL": redis_url or "off",
        "RAGLINE_PARSING__WORKERS": "1",
    }
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [*ragline_command(), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


@dataclass
class App:
    url: str
    settings: Settings
    engine: FakeEngine

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


@pytest.fixture
def start_app() -> Iterator[Any]:
    """Starts apps with the fake engine; every one is stopped at the end of the test."""
    with ExitStack() as stack:

        def start(settings: Settings) -> App:
            engine = FakeEngine()
            app = create_app(settings, engine_factory=lambda _: engine)  # type: ignore[arg-type,return-value]
            return App(stack.enter_context(serve_in_thread(app)), settings, engine)

        yield start


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


# -- 1. a deleted collection's data is never served from the result cache ---------------

OLD = "The vault code of the old archive is 4417."
NEW = "The new archive keeps garden tools and no codes at all."


def _retrieve(http: httpx.Client, collection: str = "recycled") -> dict[str, Any]:
    response = http.post(
        "/v1/retrieve", json={"query": "what is the vault code?", "collection": collection}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _chat_sources(http: httpx.Client, collection: str = "recycled") -> str:
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": collection,
            "messages": [{"role": "user", "content": "what is the vault code?"}],
        },
    )
    assert response.status_code == 200, response.text
    return " ".join(s["text"] for s in response.json()["sources"])


@pytest.mark.parametrize("backend", ["in-process", "redis"])
def test_recreated_collection_is_not_served_from_the_cache(
    backend: str, tmp_path: Path, embedder: Embedder, start_app: Any, request: pytest.FixtureRequest
) -> None:
    """Server A caches a query; the CLI deletes the collection and re-creates it with other
    documents (generation 1 again); A must answer from the new documents."""
    redis_url = request.getfixturevalue("private_redis").url if backend == "redis" else None
    data = tmp_path / "var"
    settings = _settings(data, redis_url)
    _ingest(settings, "recycled", [_doc(str(tmp_path / "old.txt"), OLD)], embedder)
    server = start_app(settings)
    with server.http() as http:
        assert "4417" in _retrieve(http)["passages"][0]["text"]
        assert _retrieve(http)["cache_hit"]
        assert "4417" in _chat_sources(http)

        new = tmp_path / "new.txt"
        new.write_text(NEW)
        _cli(data, redis_url, "delete", "--all", "-c", "recycled")
        _cli(data, redis_url, "ingest", str(new), "-c", "recycled")

        fresh = _retrieve(http)
        assert not fresh["cache_hit"]
        assert [p["text"] for p in fresh["passages"]] == [NEW]
        assert "4417" not in _chat_sources(http)


def test_invalidating_one_collection_id_keeps_the_others() -> None:
    from ragline.retrieve.cache import InProcessCache, cache_key
    from ragline.settings import CacheSettings

    cache = InProcessCache(CacheSettings())
    old, new = (cache_key("docs", cid, 1, "q", {}) for cid in ("old", "new"))
    other = cache_key("docs2", "old", 1, "q", {})
    for key in (old, new, other):
        cache.set(key, {"passages": []})
    cache.invalidate("docs", "old")
    assert [cache.get(k) is not None for k in (old, new, other)] == [False, True, True]
