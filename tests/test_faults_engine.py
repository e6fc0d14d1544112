"""Faults that need the real engine (issue 12): sampling options and text vLLM or its
tokenizer would refuse with a 5xx, and a server killed with SIGKILL, whose engine
processes must not outlive it.

One real `ragline serve` for the whole module (the engine takes a minute to start on
2 cores); the test that kills it runs last.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import ServeProcess

from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline
from ragline.ingest.types import Element, ParsedDocument
from ragline.settings import load_settings

pytestmark = pytest.mark.slow

MODEL = "builtin:smollm2-135m-instruct"
START_TIMEOUT_S = 400


@dataclass
class Server:
    url: str
    process: ServeProcess
    data: Path

    def http(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, llm_models_dir: Path, embedder: Embedder
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("faults-engine")
    data = root / "var"
    settings = load_settings(storage={"data_dir": data})
    collection = Collection.open(settings.storage.collections_dir, "notes", settings.index, True)
    text = "The lighthouse keeper logs the weather every morning at six."
    IngestPipeline(settings, collection, embedder=embedder).ingest_documents(
        [ParsedDocument("/notes/keeper.txt", "h1", len(text), "TXT", [Element(text, "Text")])]
    )
    collection.close()
    env = {
        "RAGLINE_STORAGE__DATA_DIR": str(data),
        "RAGLINE_STORAGE__MODELS_DIR": str(llm_models_dir),
        "RAGLINE_CACHE__REDIS_URL": "off",
        "RAGLINE_GENERATION__KV_CACHE_GB": "1",
        "RAGLINE_GENERATION__MAX_TOKENS": "8",
        "RAGLINE_PARSING__WORKERS": "1",
    }
    process = ServeProcess(env, root / "server.log")
    try:
        yield Server(process.wait_ready(START_TIMEOUT_S), process, data)
    finally:
        if process.proc.poll() is None:
            process.stop()


def _chat(**extra: Any) -> dict[str, Any]:
    question = {"role": "user", "content": "When does the keeper log the weather?"}
    return {"model": "notes", "messages": [question], "max_tokens": 4, **extra}


def _completion(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": "1, 2, 3,", "max_tokens": 4, **extra}


BAD_SAMPLING = [
    pytest.param({"seed": 2**64}, "seed", id="seed-2^64"),
    pytest.param({"seed": -(2**64)}, "seed", id="seed--2^64"),
    pytest.param({"stop": ""}, "stop", id="stop-empty"),
    pytest.param({"stop": ["ok", ""]}, "stop", id="stop-list-with-empty"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("extra", "param"), BAD_SAMPLING)
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/completions"])
def test_bad_sampling_options_are_a_400(
    server: Server, route: str, extra: dict[str, Any], param: str, stream: bool
) -> None:
    body = (_chat if route == "/v1/chat/completions" else _completion)(**extra, stream=stream)
    with server.http() as http:
        response = http.post(route, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith(param)


SURROGATE = "caf\ud800e"  # a lone surrogate: valid JSON (\ud800), not valid Unicode text


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/chat/completions", _chat(messages=[{"role": "user", "content": SURROGATE}])),
        ("/v1/completions", _completion(prompt=SURROGATE)),
        ("/v1/embeddings", {"model": "any", "input": [SURROGATE]}),
        ("/v1/retrieve", {"collection": "notes", "query": SURROGATE}),
    ],
)
def test_lone_surrogates_are_a_400(server: Server, route: str, body: dict[str, Any]) -> None:
    with server.http() as http:
        response = http.post(
            route,
            content=json.dumps(body).encode(),  # json.dumps escapes it as \ud800
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json()["error"]["message"]


def test_long_max_tokens_is_explained(server: Server) -> None:
    with server.http() as http:
        response = http.post("/v1/chat/completions", json=_chat(max_tokens=4095))
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "max_tokens" in message and "limit of 1" not in message, message


def test_valid_requests_still_answer(server: Server) -> None:
    with server.http() as http:
        chat = http.post("/v1/chat/completions", json=_chat(seed=2**63 - 1, stop=["\n\n"]))
        assert chat.status_code == 200, chat.text
        done = http.post("/v1/completions", json=_completion(seed=0, stop="zzz"))
        assert done.status_code == 200, done.text
        assert 'status="500"' not in http.get("/metrics").text


# -- 2. the engine's processes die with the server (this test kills it: keep it last) ----


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def test_sigkill_of_the_server_takes_its_engine_along(server: Server) -> None:
    pid = server.process.proc.pid
    family = _descendants(pid)
    assert any(_name(p).startswith("VLLM::") for p in family), {p: _name(p) for p in family}
    os.kill(pid, signal.SIGKILL)
    server.process.proc.wait(10)
    deadline = time.monotonic() + 30
    try:
        while survivors := {p: _name(p) for p in family if _alive(p)}:
            assert time.monotonic() < deadline, f"orphans left behind: {survivors}"
            time.sleep(0.5)
    finally:
        for p in family:  # never leave them running on a shared machine
            if _alive(p):
                os.kill(p, signal.SIGKILL)
    while list((server.data / "run").glob("serve-*.json")):
        assert time.monotonic() < deadline, "the record was not removed"
        time.sleep(0.2)
