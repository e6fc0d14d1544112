"""The HTTP API over real HTTP (uvicorn in a thread) with a scripted stand-in engine:
errors, auth, admission, disconnects and upload checks, deterministic and in seconds.
The real vLLM engine is exercised by tests/test_api.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import key_hash, serve_in_thread

from bench.fake_serve import ScriptedEngine
from ragline.api.app import create_app
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.settings import Settings, load_settings

ADMIN_KEY = "sk-admin-test"
ALPHA_KEY = "sk-alpha-test"


class FakeEngine(ScriptedEngine):
    """Streams "Alpha word word word word [1]." a word each 5 ms, citing [1] (fewer words
    with a smaller max_tokens); ``gate`` cleared holds every stream mid-answer."""

    def __init__(self) -> None:
        super().__init__(
            ("Alpha ", *("word ",) * 4),
            max_model_len=400,
            word_delay_s=0.005,
            cached_prompt_tokens=3,
            timings_s=(0.01, 0.005, 0.05),
        )


@dataclass
class Server:
    url: str
    engine: FakeEngine
    settings: Settings
    data: Path

    def client(self, key: str | None = ADMIN_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _doc(source: str, text: str) -> ParsedDocument:
    return ParsedDocument(source, f"h:{text}", len(text), "TXT", [Element(text, "NarrativeText")])


def _serve(settings: Settings, engine: FakeEngine) -> AbstractContextManager[str]:
    """The app with the fake engine under uvicorn in a thread; yields its URL."""
    return serve_in_thread(create_app(settings, engine_factory=lambda _: engine))  # type: ignore[arg-type,return-value]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("api-fast")
    (data / "allowed").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("REDIS_URL", raising=False)
        settings = load_settings(
            storage={"data_dir": data},
            cache={"redis_url": None},
            generation={"max_tokens": 16},
            parsing={"max_file_mb": 0.01, "workers": 1},
            api={
                "keys": [
                    {"sha256": key_hash(ADMIN_KEY), "name": "admin"},
                    {"sha256": key_hash(ALPHA_KEY), "name": "alpha", "collections": ["alpha"]},
                ],
                "max_active_generations": 1,
                "max_queued": 1,
                "queue_timeout_s": 10,
                "max_body_mb": 0.02,
                "max_upload_mb": 0.05,
                "ingest_roots": [str(data / "allowed")],
            },
        )
    for name, docs in {
        "alpha": [
            _doc("/docs/alpha/faiss.txt", "FAISS searches dense vectors with inner product."),
            _doc("/docs/alpha/bm25.txt", "BM25 ranks passages by term frequency and rarity."),
        ],
        "beta": [_doc("/docs/beta/secret.txt", "The beta launch code is 0000.")],
    }.items():
        collection = Collection.open(settings.storage.collections_dir, name, settings.index, True)
        IngestPipeline(settings, collection, embedder=embedder).ingest_documents(docs)
        collection.close()

    engine = FakeEngine()
    with _serve(settings, engine) as url:
        yield Server(url, engine, settings, data)


def _chat(question: str = "How does FAISS search?", **extra: Any) -> dict[str, Any]:
    return {"model": "alpha", "messages": [{"role": "user", "content": question}], **extra}


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_chat_answer_with_sources_and_usage(server: Server) -> None:
    with server.client() as http:
        body = http.post("/v1/chat/completions", json=_chat()).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Alpha word word word word [1]."
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 3
    sources = body["sources"]
    assert sources and sources[0]["number"] == 1 and sources[0]["cited"]
    assert {s["source"] for s in sources} <= {"faiss.txt", "bm25.txt"}  # names, not paths
    assert not any(s["cited"] for s in sources[1:])


def test_chat_stream_in_openai_chunks(server: Server) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY)
    chunks = list(
        client.chat.completions.create(
            model="alpha",
            messages=[{"role": "user", "content": "What ranks passages?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Alpha word word word word [1]."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    tail = chunks[-1]
    assert tail.choices == [] and tail.usage is not None and tail.usage.completion_tokens == 6
    assert tail.model_extra is not None and tail.model_extra["sources"][0]["cited"]


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"model": "alpha", "messages": []}, 400, "empty_messages"),
        (_chat() | {"messages": [{"role": "assistant", "content": "hi"}]}, 400, "invalid_messages"),
        (_chat() | {"model": "nope"}, 404, "not_found"),
        (_chat() | {"temperature": 7}, 400, "invalid_value"),
        (_chat() | {"n": 2}, 400, "invalid_value"),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "invalid_value"),
        (_chat() | {"max_tokens": 5000}, 400, "context_length_exceeded"),
        (_chat("word " * 500), 400, "context_length_exceeded"),
        (_chat() | {"rerank": True}, 400, None),
    ],
)
def test_bad_chat_requests_get_openai_errors(
    server: Server, payload: dict[str, Any], status: int, code: str | None
) -> None:
    with server.client() as http:
        error = _error(http.post("/v1/chat/completions", json=payload), status)
    assert error["code"] == code


def test_malformed_json_unknown_route_and_body_limit(server: Server) -> None:
    with server.client() as http:
        bad = http.post(
            "/v1/chat/completions",
            content=b'{"model": "alpha", "messages": [',
            headers={"content-type": "application/json"},
        )
        assert _error(bad, 400)["code"] == "invalid_json"
        assert _error(http.get("/v1/nothing"), 404)["type"] == "invalid_request_error"
        big = _chat("x " * 20_000)  # 40 KB > max_body_mb
        assert _error(http.post("/v1/chat/completions", json=big), 413)["code"] == (
            "request_too_large"
        )

        def chunked() -> Iterator[bytes]:  # no Content-Length: the limit trips while reading
            yield b'{"model": "alpha", "messages": [{"role": "user", "content": "'
            for _ in range(40):
                yield b"x" * 1024
            yield b'"}]}'

        streamed = http.post(
            "/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"}
        )
        assert _error(streamed, 413)["code"] == "request_too_large"


def test_api_keys_isolate_collections(server: Server) -> None:
    with server.client(None) as anonymous:
        assert _error(anonymous.get("/v1/models"), 401)["code"] == "invalid_api_key"
    with server.client("sk-wrong") as wrong:
        _error(wrong.post("/v1/chat/completions", json=_chat()), 401)
    with server.client(ALPHA_KEY) as alpha:
        ids = {m["id"] for m in alpha.get("/v1/models").json()["data"]}
        assert "alpha" in ids and "beta" not in ids
        assert [c["name"] for c in alpha.get("/v1/collections").json()["data"]] == ["alpha"]
        # Another key's collection looks exactly like one that does not exist.
        for response in (
            alpha.post("/v1/chat/completions", json=_chat() | {"model": "beta"}),
            alpha.post("/v1/retrieve", json={"query": "launch code", "collection": "beta"}),
            alpha.get("/v1/collections/beta/documents"),
            alpha.delete("/v1/collections/beta"),
            alpha.post("/v1/collections/beta/documents", json={"paths": ["/x"]}),
        ):
            assert _error(response, 404)["message"] == "collection 'beta' not found"
        assert alpha.post("/v1/chat/completions", json=_chat()).status_code == 200
    with server.client() as admin:
        ids = {m["id"] for m in admin.get("/v1/models").json()["data"]}
        assert {"alpha", "beta"} <= ids


def test_admission_queues_then_refuses_with_429(server: Server) -> None:
    async def scenario() -> tuple[list[int], httpx.Response]:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
            server.engine.gate.clear()  # the first answer holds the only slot
            first = asyncio.create_task(http.post("/v1/chat/completions", json=_chat()))
            await _until(lambda: server.engine.unfinished == 1)
            second = asyncio.create_task(http.post("/v1/chat/completions", json=_chat()))
            await _until_health(http, lambda h: h["generation"]["queued"] == 1)
            refused = await http.post("/v1/chat/completions", json=_chat())
            server.engine.gate.set()
            done = await asyncio.gather(first, second)
            return [r.status_code for r in done], refused

    statuses, refused = asyncio.run(scenario())
    assert statuses == [200, 200]
    assert _error(refused, 429)["type"] == "rate_limit_error"
    assert refused.headers["Retry-After"] == "2"
    with server.client() as http:
        assert "ragline_rejected_total 1.0" in http.get("/metrics").text


async def _until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def _until_health(http: httpx.AsyncClient, condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition((await http.get("/health")).json()):
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def _disconnects(http: httpx.Client) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("ragline_client_disconnects_total "):
            return float(line.split()[1])
    raise AssertionError("no disconnect counter")


def test_client_disconnect_aborts_the_answer(server: Server) -> None:
    server.engine.gate.clear()
    try:
        with server.client() as http:
            before = _disconnects(http)
            with http.stream("POST", "/v1/chat/completions", json=_chat(stream=True)) as stream:
                assert stream.status_code == 200
                lines = stream.iter_lines()
                next(lines)  # the role chunk: the answer is under way
                # (Keep the iterator: a discarded one closes the response when collected.)
                asyncio.run(_until(lambda: server.engine.unfinished == 1))
            # Leaving the block closed the connection mid-answer.
            deadline = time.monotonic() + 10
            while http.get("/health").json()["engine"]["unfinished_requests"]:
                assert time.monotonic() < deadline, "generation was not aborted"
                time.sleep(0.05)
            health = http.get("/health").json()
            assert health["generation"] == {"active": 0, "queued": 0}
            assert _disconnects(http) == before + 1
    finally:
        server.engine.gate.set()


def test_client_gone_before_a_plain_answer_aborts_it(server: Server) -> None:
    server.engine.gate.clear()
    try:
        with server.client() as http:
            with pytest.raises(httpx.ReadTimeout):
                http.post("/v1/chat/completions", json=_chat(), timeout=httpx.Timeout(30, read=1))
            deadline = time.monotonic() + 10
            while http.get("/health").json()["engine"]["unfinished_requests"]:
                assert time.monotonic() < deadline, "generation was not aborted"
                time.sleep(0.05)
            assert http.get("/health").json()["generation"] == {"active": 0, "queued": 0}
    finally:
        server.engine.gate.set()


def test_serve_refuses_an_unprepared_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragline.cli import app

    env = {"RAGLINE_STORAGE__MODELS_DIR": str(tmp_path / "no-models")}
    result = CliRunner().invoke(app, ["serve", "--port", "1"], env=env)
    assert result.exit_code == 1
    # The console wraps at its width, wherever the temporary path puts the break.
    assert "ragline model prepare" in " ".join(result.output.split())


def test_collection_without_documents_answers_without_sources(server: Server) -> None:
    settings = server.settings
    Collection.open(settings.storage.collections_dir, "empty", settings.index, True).close()
    with server.client() as http:
        answer = http.post("/v1/chat/completions", json=_chat() | {"model": "empty"})
        assert answer.status_code == 200 and answer.json()["sources"] == []
        found = http.post("/v1/retrieve", json={"query": "x", "collection": "empty"})
        assert found.status_code == 200 and found.json()["passages"] == []
        unknown = http.post("/v1/completions", json={"model": "nope", "prompt": "hi"})
        assert _error(unknown, 404)["param"] == "collection"
        assert http.delete("/v1/collections/empty").json()["deleted"]


def test_retrieve_with_file_name_filter_and_timings(server: Server) -> None:
    with server.client() as http:
        body = http.post(
            "/v1/retrieve",
            json={
                "query": "dense vectors",
                "collection": "alpha",
                "top_k": 2,
                "filters": {"sources": ["bm25.txt"]},
            },
        ).json()
        assert [p["source"] for p in body["passages"]] == ["bm25.txt"]
        assert "dense" in body["timings_ms"] and "bm25" in body["timings_ms"]
        again = http.post(
            "/v1/retrieve", json={"query": "dense vectors", "collection": "alpha", "mode": "dense"}
        ).json()
        assert again["passages"][0]["source"] == "faiss.txt"
        assert again["passages"][0]["bm25_score"] is None
        bad_mode = http.post(
            "/v1/retrieve", json={"query": "x", "collection": "alpha", "mode": "?"}
        )
        assert _error(bad_mode, 400)["param"] == "mode"


def test_retrieve_with_a_conversation(server: Server) -> None:
    messages = [
        {"role": "user", "content": "How does BM25 rank passages?"},
        {"role": "assistant", "content": "BM25 ranks passages by term frequency and rarity."},
        {"role": "user", "content": "And what searches the dense vectors?"},
    ]
    with server.client() as http:
        body = http.post(
            "/v1/retrieve", json={"messages": messages, "collection": "alpha", "top_k": 1}
        ).json()
        assert body["query"] == "And what searches the dense vectors?"
        assert body["rewrite"].startswith(body["query"]) and "BM25" in body["rewrite"]
        assert [p["source"] for p in body["passages"]] == ["faiss.txt"]
        assert "rewrite_retrieval" in body["timings_ms"]
        single = http.post("/v1/retrieve", json={"query": "BM25", "collection": "alpha"}).json()
        assert single["rewrite"] is None
        both = {"query": "x", "messages": messages, "collection": "alpha"}
        assert _error(http.post("/v1/retrieve", json=both), 400)["type"]
        neither = {"collection": "alpha"}
        assert _error(http.post("/v1/retrieve", json=neither), 400)["type"]
        last_not_user = {"messages": messages[:2], "collection": "alpha"}
        assert _error(http.post("/v1/retrieve", json=last_not_user), 400)["code"] == (
            "invalid_messages"
        )


def test_unsupported_question_gets_an_abstention_not_a_generation(server: Server) -> None:
    message = server.settings.generation.abstain_message
    question = "Who won the football world cup in 1998?"
    with server.client() as http:
        body = http.post("/v1/chat/completions", json=_chat(question)).json()
        assert body["choices"][0]["message"]["content"] == message
        assert body["sources"] == [] and body["usage"]["completion_tokens"] == 0
        with http.stream(
            "POST", "/v1/chat/completions", json=_chat(question, stream=True)
        ) as streamed:
            text = "".join(line for line in streamed.iter_lines() if "content" in line)
        assert message in text and "Alpha" not in text
        # A supported question is still answered by the model.
        answered = http.post("/v1/chat/completions", json=_chat()).json()
        assert answered["choices"][0]["message"]["content"].startswith("Alpha")


def test_collection_listing_reports_chunk_sizes(server: Server) -> None:
    with server.client() as http:
        listed = {c["name"]: c for c in http.get("/v1/collections").json()["data"]}
    alpha = listed["alpha"]
    assert alpha["chunks"] == 2 and alpha["small_chunk_share"] == 1.0
    assert 5 <= alpha["median_chunk_tokens"] < 32
    # The runtime that made its vectors: the one this machine chose (recorded, shared).
    chosen = Embedder(load_settings().embedding).runtime_name
    assert alpha["embedding_runtimes"] == [chosen]


def test_a_commit_by_another_writer_is_searchable_within_two_seconds(
    server: Server, embedder: Embedder
) -> None:
    """A writer outside the server (here a collection opened apart, as the CLI or another
    server would) commits; the server's next queries see it, by BM25 and by vector,
    without a rebuild, and the cached answer from before the commit is not served."""
    query = {"query": "quantum annealing schedules", "collection": "fresh", "top_k": 1}
    writer = Collection.open(
        server.settings.storage.collections_dir, "fresh", server.settings.index, create=True
    )
    IngestPipeline(server.settings, writer, embedder=embedder).ingest_documents(
        [_doc("/docs/fresh/first.txt", "Simulated annealing cools a system slowly.")]
    )
    with server.client() as http:
        before = http.post("/v1/retrieve", json=query).json()
        assert before["passages"][0]["source"] == "first.txt"
        started = time.monotonic()
        IngestPipeline(server.settings, writer, embedder=embedder).ingest_documents(
            [_doc("/docs/fresh/annealing.txt", "Quantum annealing schedules tune the anneal.")]
        )
        writer.close()
        committed = time.monotonic()
        seen: dict[str, float] = {}
        while len(seen) < 3 and time.monotonic() - committed < 2.0:
            for mode in ("bm25", "dense", "hybrid"):
                body = http.post("/v1/retrieve", json={**query, "mode": mode}).json()
                if mode not in seen and body["passages"][0]["source"] == "annealing.txt":
                    seen[mode] = time.monotonic() - committed
        assert set(seen) == {"bm25", "dense", "hybrid"}, (seen, started)
        # The answer cached before the commit is never served again.
        again = http.post("/v1/retrieve", json=query).json()
        assert again["passages"][0]["source"] == "annealing.txt"


def test_upload_checks(server: Server) -> None:
    url = "/v1/collections/alpha/documents"
    with server.client() as http:
        exe = http.post(url, files=[("files", ("tool.exe", b"MZ..."))])
        assert _error(exe, 415)["code"] == "unsupported_file_type"
        for name in ("../escape.txt", "a/b.txt", "..\\x.txt", ".hidden.txt"):
            sneaky = http.post(url, files=[("files", (name, b"text"))])
            assert _error(sneaky, 400)["code"] == "invalid_file_name", name
        big_file = http.post(url, files=[("files", ("big.txt", b"x" * 20_000))])
        assert _error(big_file, 413)["code"] == "file_too_large"  # parsing.max_file_mb
        # Over api.max_upload_mb plus the allowance for multipart framing (1 MiB).
        huge = http.post(url, files=[("files", ("huge.txt", b"x" * 1_200_000))])
        assert _error(huge, 413)["code"] == "request_too_large"  # api.max_upload_mb
        plain = http.post(url, content=b"hello", headers={"content-type": "text/plain"})
        assert _error(plain, 415)["code"] == "unsupported_media_type"
        assert _error(http.post("/v1/collections/bad..name/documents", json={"paths": []}), 400)
        outside = http.post(url, json={"paths": ["/etc/passwd"]})
        assert _error(outside, 403)["code"] == "path_not_allowed"
        link = server.data / "allowed" / "link.txt"
        link.symlink_to("/etc/hostname")
        try:
            assert _error(http.post(url, json={"paths": [str(link)]}), 403)
        finally:
            link.unlink()
    assert not list((server.data / "uploads").rglob("*")) or all(
        p.is_dir() for p in (server.data / "uploads").rglob("*")
    ), "a refused upload left files behind"


def test_job_from_allowed_path_runs_in_process(server: Server) -> None:
    note = server.data / "allowed" / "note.txt"
    note.write_text("Reciprocal rank fusion merges the dense and BM25 rankings.")
    with server.client() as http:
        accepted = http.post("/v1/collections/gamma/documents", json={"paths": [str(note)]})
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()
        assert accepted.headers["Location"] == f"/v1/jobs/{job['id']}"
        deadline = time.monotonic() + 120
        while job["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
            job = http.get(f"/v1/jobs/{job['id']}").json()
        assert job["status"] == "succeeded", job
        assert (job["files_done"], job["files_total"], job["outcomes"]) == (1, 1, {"ingested": 1})
        docs = http.get("/v1/collections/gamma/documents").json()["data"]
        assert [d["name"] for d in docs] == ["note.txt"]
        with server.client(ALPHA_KEY) as alpha:
            _error(alpha.get(f"/v1/jobs/{job['id']}"), 404)
        assert http.delete("/v1/collections/gamma/documents/note.txt").json()["deleted"]
        assert http.get("/v1/collections/gamma/documents").json()["data"] == []
        assert http.delete("/v1/collections/gamma").json()["deleted"]
        _error(http.get("/v1/collections/gamma"), 404)


def test_health_metrics_embeddings_and_completions(server: Server) -> None:
    from openai import OpenAI

    with server.client() as http:
        health = http.get("/health").json()
        assert health["status"] == "ok" and health["redis"] == "unused"
        encoder = health["encoders"]["embedding"]  # chosen before the server took requests
        assert encoder["runtime"] == Embedder(load_settings().embedding).runtime_name
        assert encoder["quality"] >= 0.99 and encoder["reason"]
        text = http.get("/metrics").text
        for family in (
            'ragline_requests_total{method="POST",route="/v1/chat/completions",status="200"}',
            'ragline_stage_seconds_count{stage="retrieve"}',
            'ragline_stage_seconds_count{stage="prefill"}',
            "ragline_ttft_seconds_count",
            "ragline_tpot_seconds_count",
            "ragline_kv_prefix_cache_hit_ratio",
            "ragline_result_cache_hit_ratio",
            "ragline_generation_queue_depth 0.0",
            "ragline_ingest_queue_depth",
            'ragline_ingest_job_files{state="done"}',
        ):
            assert family in text, family
        assert "ragline_redis_up" not in text  # Redis not configured
        empty = http.post("/v1/embeddings", json={"input": ["ok", " "]})
        assert _error(empty, 400)["param"] == "input"
    client = OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY)
    vectors = client.embeddings.create(model="any", input=["dense", "vectors"])  # base64
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 384
    floats = client.embeddings.create(model="any", input="dense", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vectors.data[0].embedding, abs=1e-6)
    completion = client.completions.create(
        model="builtin:smollm2-135m-instruct", prompt="Once", max_tokens=4
    )
    assert completion.choices[0].text == "Alpha word word [1]."
    assert completion.usage is not None and completion.usage.completion_tokens == 4


# -- schema fuzzing: every operation of /openapi.json, no 5xx for any generated input ------

try:
    import schemathesis
    from hypothesis import HealthCheck
    from hypothesis import settings as hypothesis_settings
except ImportError:  # optional: pip install schemathesis
    schemathesis = None


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[str]:
    """A server of its own (auth off, so inputs reach the handlers) whose state the
    fuzzer may wreck."""
    data = tmp_path_factory.mktemp("api-fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("REDIS_URL", raising=False)
        settings = load_settings(
            storage={"data_dir": data},
            cache={"redis_url": None},
            generation={"max_tokens": 16},
            parsing={"workers": 1, "file_timeout_s": 20},
        )
    collection = Collection.open(settings.storage.collections_dir, "alpha", settings.index, True)
    IngestPipeline(settings, collection, embedder=embedder).ingest_documents(
        [_doc("/docs/alpha/faiss.txt", "FAISS searches dense vectors with inner product.")]
    )
    collection.close()
    with _serve(settings, FakeEngine()) as url:
        yield url


@pytest.mark.skipif(schemathesis is None, reason="schemathesis is not installed")
def test_fuzzed_requests_never_get_a_server_error(fuzz_url: str) -> None:
    """Hypothesis-generated requests, valid and invalid, for every operation."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_url(fuzz_url + "/openapi.json")
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in schemathesis.GenerationMode:

            @given(case=operation.as_strategy(mode))
            @hypothesis_settings(
                max_examples=15,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                response = case.call(timeout=30)
                statuses.append(response.status_code)
                assert response.status_code < 500, (case.method, case.path, response.text[:500])

            with contextlib.suppress(Unsatisfiable):  # nothing to make invalid (no inputs)
                fuzz()
    assert len(statuses) > 100 and any(400 <= s < 500 for s in statuses)
