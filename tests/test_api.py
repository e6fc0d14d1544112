"""The HTTP API end to end: one real `ragline serve` (vLLM on the embedded model) over
`samples/` ingested into "demo", with a private Redis for the cache and job queue.

Clients are the official ``openai`` package and httpx. Tests run in file order against
the one server (the Redis outage test last); admission is 1 active + 1 queued so that
"server full" is reachable with three requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import REPO, PrivateRedis, ServeProcess, key_hash, ragline_command

from ragline.ingest.collection import Collection
from ragline.ingest.pipeline import IngestPipeline, Status
from ragline.settings import load_settings

pytestmark = pytest.mark.slow

ADMIN_KEY = "sk-ragline-admin"
TENANT_KEY = "sk-ragline-tenant"
QUESTION = "What does LayoutParser provide?"
COUNTING = "1, 2, 3, 4, 5,"  # the model keeps counting: a long, predictable stream
START_TIMEOUT_S = 400


@dataclass
class Server:
    url: str
    data: Path
    log: Path
    redis: PrivateRedis | None
    allowed: Path

    def http(self, key: str | None = ADMIN_KEY, timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def openai(self, key: str = ADMIN_KEY) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.url + "/v1", api_key=key, timeout=120, max_retries=0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm_models_dir: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("api")
    data, allowed = root / "var", root / "allowed"
    allowed.mkdir()
    redis = PrivateRedis(root) if shutil.which("redis-server") else None
    if redis is not None:
        redis.start()
    env = {
        "RAGLINE_STORAGE__DATA_DIR": str(data),
        "RAGLINE_STORAGE__MODELS_DIR": str(llm_models_dir),
        "RAGLINE_GENERATION__KV_CACHE_GB": "1",
        "RAGLINE_GENERATION__MAX_TOKENS": "24",
        "RAGLINE_PARSING__WORKERS": "1",
        "RAGLINE_PARSING__MAX_FILE_MB": "0.5",
        "RAGLINE_API__MAX_ACTIVE_GENERATIONS": "1",
        "RAGLINE_API__MAX_QUEUED": "1",
        "RAGLINE_API__MAX_UPLOAD_MB": "1",
        "RAGLINE_API__INGEST_ROOTS": json.dumps([str(allowed)]),
        "RAGLINE_API__KEYS": json.dumps(
            [
                {"sha256": key_hash(ADMIN_KEY), "name": "admin"},
                {"sha256": key_hash(TENANT_KEY), "name": "tenant", "collections": ["tenant-docs"]},
            ]
        ),
    }
    if redis is not None:
        env["REDIS_URL"] = redis.url
    process = ServeProcess(env, root / "server.log")
    try:
        # Ingest while the engine starts: the server opens "demo" on first use.
        settings = load_settings(storage={"data_dir": data}, parsing={"workers": 1})
        demo = Collection.open(settings.storage.collections_dir, "demo", settings.index, True)
        report = IngestPipeline(settings, demo).run([REPO / "samples"])
        demo.close()
        assert report.count(Status.INGESTED) >= 7, report.failures
        url = process.wait_ready(START_TIMEOUT_S)
        yield Server(url, data, process.log, redis, allowed)
    finally:
        process.stop()
        if redis is not None:
            redis.kill()


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    return error


def _chat(question: str = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": question}], **extra}


def _wait_job(http: httpx.Client, job: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
        job = http.get(f"/v1/jobs/{job['id']}").json()
    return job


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def _idle(http: httpx.Client) -> dict[str, Any]:
    """Wait until no answer is streaming or queued (the last test's slot is given back)."""
    deadline = time.monotonic() + 60
    while True:
        health: dict[str, Any] = http.get("/health").json()
        if health["generation"] == {"active": 0, "queued": 0}:
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.1)


def test_chat_with_sources(server: Server) -> None:
    client = server.openai()
    response = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": QUESTION}], max_tokens=24, seed=1
    )
    assert response.object == "chat.completion"
    assert response.choices[0].message.content.strip()
    assert response.choices[0].finish_reason in ("stop", "length")
    usage = response.usage
    assert usage.prompt_tokens > 100 and 0 < usage.completion_tokens <= 24
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    sources = response.model_extra["sources"]
    assert [s["number"] for s in sources] == list(range(1, len(sources) + 1))
    assert "layout-parser-paper-fast.pdf" in {s["source"] for s in sources}
    for source in sources:
        assert {"page", "headings", "chunk_id", "score", "text", "cited", "attributed"} <= set(
            source
        )
        assert isinstance(source["cited"], bool) and source["text"]
        assert not (source["cited"] and source["attributed"])
    # Whether the model wrote [n] or not, the answer comes back tied to its sources.
    answer = response.choices[0].message.content
    assert any(s["cited"] or s["attributed"] for s in sources), (answer, sources)


def test_chat_stream_and_prefix_cache(server: Server) -> None:
    client = server.openai()
    chunks = list(
        client.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    tail = chunks[-1]
    assert tail.choices == [] and tail.usage is not None
    assert tail.model_extra["sources"]
    # The same sources again: vLLM's prefix cache serves the shared prompt prefix.
    assert tail.usage.prompt_tokens_details.cached_tokens > 0
    follow_up = client.chat.completions.create(
        model="demo",
        messages=[
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": text},
            {"role": "user", "content": "Who are its authors?"},
        ],
        max_tokens=16,
    )
    assert follow_up.choices[0].message.content.strip()


def test_models_embeddings_completions(server: Server) -> None:
    client = server.openai()
    ids = {m.id for m in client.models.list()}
    assert {"demo", "builtin:smollm2-135m-instruct"} <= ids
    embeddings = client.embeddings.create(model="any", input=["layout parser", "tables"])
    assert len(embeddings.data) == 2 and len(embeddings.data[0].embedding) == 384
    assert embeddings.usage.prompt_tokens > 0
    completion = client.completions.create(
        model="builtin:smollm2-135m-instruct", prompt=COUNTING, max_tokens=8, temperature=0
    )
    assert "6" in completion.choices[0].text
    pieces = client.completions.create(
        model="builtin:smollm2-135m-instruct",
        prompt=COUNTING,
        max_tokens=8,
        temperature=0,
        stream=True,
    )
    assert "6" in "".join(c.choices[0].text for c in pieces if c.choices)


def test_retrieve(server: Server) -> None:
    with server.http() as http:
        body = http.post(
            "/v1/retrieve",
            json={"query": QUESTION, "collection": "demo", "top_k": 3, "mode": "hybrid"},
        ).json()
    assert len(body["passages"]) == 3
    assert body["passages"][0]["source"] == "layout-parser-paper-fast.pdf"
    assert {"dense", "bm25", "fusion"} <= set(body["timings_ms"])


def test_upload_job_documents_and_delete(server: Server) -> None:
    good = b"# Zebra facts\n\nThe zebra crossing was introduced in 1951 in Slough.\n"
    corrupt = b"%PDF-1.4\n" + bytes(range(256)) * 8
    with server.http() as http:
        before = http.get("/v1/collections/demo").json()
        accepted = http.post(
            "/v1/collections/demo/documents",
            files=[("files", ("zebra.md", good)), ("files", ("broken.pdf", corrupt))],
        )
        assert accepted.status_code == 202, accepted.text
        job = _wait_job(http, accepted.json())
        assert job["status"] == "succeeded" and job["files_done"] == job["files_total"] == 2
        assert job["outcomes"] == {"ingested": 1, "failed": 1}
        assert [e["file"] for e in job["errors"]] == ["broken.pdf"] and job["errors"][0]["error"]
        docs = http.get("/v1/collections/demo/documents").json()["data"]
        assert "zebra.md" in {d["name"] for d in docs} and "broken.pdf" not in {
            d["name"] for d in docs
        }
        assert len(docs) == before["documents"] + 1
        hit = http.post(
            "/v1/retrieve", json={"query": "zebra crossing Slough", "collection": "demo"}
        ).json()
        assert hit["passages"][0]["source"] == "zebra.md"

        assert http.delete("/v1/collections/demo/documents/zebra.md").json()["deleted"]
        _error(http.delete("/v1/collections/demo/documents/zebra.md"), 404)
        after = http.get("/v1/collections/demo").json()
        assert after["documents"] == before["documents"]  # the collection is as it was
        assert after["chunks"] == before["chunks"]


def test_paths_ingestion_and_key_isolation(server: Server) -> None:
    note = server.allowed / "tenant.txt"
    note.write_text("The tenant handbook says lunch is served at noon on the roof.")
    with server.http(TENANT_KEY) as tenant:
        refused = tenant.post("/v1/collections/tenant-docs/documents", json={"paths": ["/etc"]})
        assert _error(refused, 403)["code"] == "path_not_allowed"
        accepted = tenant.post(
            "/v1/collections/tenant-docs/documents", json={"paths": [str(server.allowed)]}
        )
        assert accepted.status_code == 202, accepted.text
        assert _wait_job(tenant, accepted.json())["status"] == "succeeded"
        assert [m["id"] for m in tenant.get("/v1/models").json()["data"]] == [
            "builtin:smollm2-135m-instruct",
            "tenant-docs",
        ]
        assert [c["name"] for c in tenant.get("/v1/collections").json()["data"]] == ["tenant-docs"]
        for response in (
            tenant.post("/v1/chat/completions", json=_chat()),
            tenant.post("/v1/retrieve", json={"query": "x", "collection": "demo"}),
            tenant.get("/v1/collections/demo/documents"),
            tenant.delete("/v1/collections/demo"),
        ):
            assert _error(response, 404)["message"] == "collection 'demo' not found"
        found = tenant.post(
            "/v1/retrieve", json={"query": "when is lunch", "collection": "tenant-docs"}
        ).json()
        assert found["passages"][0]["source"] == "tenant.txt"
    with server.http(None) as anonymous:
        assert _error(anonymous.get("/v1/collections"), 401)["code"] == "invalid_api_key"
    with server.http() as admin:
        names = {c["name"] for c in admin.get("/v1/collections").json()["data"]}
        assert {"demo", "tenant-docs"} <= names


def test_bad_input_gets_openai_errors(server: Server) -> None:
    url = "/v1/collections/demo/documents"
    with server.http() as http:
        bad_json = http.post(
            "/v1/chat/completions",
            content=b'{"model": "demo", "messages": [}',
            headers={"content-type": "application/json"},
        )
        assert _error(bad_json, 400)["code"] == "invalid_json"
        assert _error(http.post("/v1/chat/completions", json=_chat(model="nope")), 404)
        empty = http.post("/v1/chat/completions", json={"model": "demo", "messages": []})
        assert _error(empty, 400)["param"] == "messages"
        long_prompt = http.post("/v1/chat/completions", json=_chat("layout " * 5000))
        assert _error(long_prompt, 400)["code"] == "context_length_exceeded"
        assert _error(http.post(url, files=[("files", ("x.exe", b"MZ"))]), 415)
        assert _error(http.post(url, files=[("files", ("../../x.md", b"# x"))]), 400)
        too_big = http.post(url, files=[("files", ("big.txt", b"a" * (2 << 20)))])
        assert _error(too_big, 413)["code"] == "request_too_large"
        big_file = http.post(url, files=[("files", ("big.txt", b"a " * 300_000))])
        assert _error(big_file, 413)["code"] == "file_too_large"
        text = http.get("/metrics").text
    assert 'status="500"' not in text


def test_full_server_answers_429(server: Server) -> None:
    async def scenario() -> tuple[int, httpx.Response]:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120) as http:
            body = {
                "model": "builtin:smollm2-135m-instruct",
                "prompt": COUNTING,
                "max_tokens": 96,
                "temperature": 0,
                "stream": True,
            }
            async with http.stream("POST", "/v1/completions", json=body) as blocker:
                lines = blocker.aiter_lines()
                while not (await anext(lines)).startswith("data:"):
                    pass  # the blocker holds the only slot now
                queued = asyncio.create_task(
                    http.post("/v1/chat/completions", json=_chat(max_tokens=4))
                )
                deadline = time.monotonic() + 10
                while (await http.get("/health")).json()["generation"]["queued"] != 1:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
                refused = await http.post("/v1/chat/completions", json=_chat())
            return (await queued).status_code, refused

    with server.http() as http:
        _idle(http)
        rejected_before = _metric(http.get("/metrics").text, "ragline_rejected_total")
        queued_status, refused = asyncio.run(scenario())
        assert queued_status == 200
        assert _error(refused, 429)["code"] == "rate_limit_exceeded"
        assert int(refused.headers["Retry-After"]) > 0
        rejected = _metric(http.get("/metrics").text, "ragline_rejected_total")
        assert rejected == rejected_before + 1


def test_disconnect_aborts_generation(server: Server) -> None:
    body = {
        "model": "builtin:smollm2-135m-instruct",
        "prompt": COUNTING,
        "max_tokens": 400,
        "temperature": 0,
        "stream": True,
    }
    with server.http() as http:
        _idle(http)
        before = _metric(http.get("/metrics").text, "ragline_client_disconnects_total")
        with http.stream("POST", "/v1/completions", json=body) as stream:
            data = (line for line in stream.iter_lines() if line.startswith("data:"))
            for _ in range(3):
                next(data)
            assert http.get("/health").json()["engine"]["unfinished_requests"] == 1
        deadline = time.monotonic() + 15
        while http.get("/health").json()["engine"]["unfinished_requests"] != 0:
            assert time.monotonic() < deadline, "vLLM still generates for a closed connection"
            time.sleep(0.1)
        text = http.get("/metrics").text
        assert _metric(text, "ragline_client_disconnects_total") == before + 1
        assert _metric(text, "ragline_engine_unfinished_requests") == 0
        _idle(http)


def test_metrics_and_health(server: Server) -> None:
    with server.http() as http:
        health = http.get("/health").json()
        text = http.get("/metrics").text
    assert health["status"] == "ok" and health["engine"]["ok"]
    assert health["redis"] == ("ok" if server.redis else "unused")
    assert health["collections"] >= 2
    assert _metric(text, "ragline_kv_prefix_cache_hit_ratio") > 0
    for stage in ("retrieve", "prefill"):
        assert _metric(text, f'ragline_stage_seconds_count{{stage="{stage}"}}') > 0
    assert _metric(text, "ragline_ttft_seconds_count") > 0
    assert _metric(text, "ragline_tpot_seconds_count") > 0
    assert _metric(text, 'ragline_ingest_files_total{status="failed"}') == 1
    assert 'route="/v1/chat/completions",status="200"' in text
    assert 'ragline_request_errors_total{route="/v1/chat/completions",status="404"}' in text
    assert "ragline_result_cache_hit_ratio" in text


def test_cli_chat_answers_once(server: Server) -> None:
    result = subprocess.run(
        [
            *ragline_command(),
            "chat",
            "--url",
            server.url,
            "--collection",
            "demo",
            "--max-tokens",
            "24",
            QUESTION,
        ],
        env={**os.environ, "RAGLINE_API_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "sources" in result.stdout and "layout-parser-paper-fast.pdf" in result.stdout


@pytest.mark.redis
def test_redis_outage_and_recovery(server: Server) -> None:
    if server.redis is None:
        pytest.skip("redis-server is not installed")
    client = server.openai()
    with server.http() as http:
        _idle(http)
        server.redis.kill()
        try:
            # Answers keep coming, uncached.
            for question in (QUESTION, "What is a layout model?"):
                answer = client.chat.completions.create(
                    model="demo", messages=[{"role": "user", "content": question}], max_tokens=8
                )
                assert answer.choices[0].message.content is not None
            health = http.get("/health")
            assert health.status_code == 200
            assert health.json()["redis"] == "down" and health.json()["status"] == "degraded"
            text = http.get("/metrics").text
            assert _metric(text, "ragline_redis_up") == 0
            assert _metric(text, "ragline_result_cache_errors_total") > 0
        finally:
            server.redis.start()  # same port
        deadline = time.monotonic() + 15
        while http.get("/health").json()["redis"] != "ok":
            assert time.monotonic() < deadline, "Redis recovery not noticed"
            time.sleep(0.2)
        assert _metric(http.get("/metrics").text, "ragline_redis_up") == 1
        query = {"query": "recovery check " + QUESTION, "collection": "demo"}
        assert not http.post("/v1/retrieve", json=query).json()["cache_hit"]
        assert http.post("/v1/retrieve", json=query).json()["cache_hit"]  # cached in Redis
        answer = client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": QUESTION}], max_tokens=8
        )
        assert answer.choices[0].message.content is not None
