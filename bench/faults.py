"""Fault injection, read as a promise: what ragline keeps when processes die under it.

    python -m bench.faults [--quick] [--seed N]

Against `ragline serve` processes with a scripted generation engine (bench/fake_serve.py:
the real embedding model, retrieval, jobs and caches; generation is not under test):

- **server kill -9 mid-job**: a multipart upload job is running; the server gets SIGKILL
  at a random moment, and a new one starts on the same data dir. The job must finish
  once (resumed), every file stored once, its uploads removed, and no child of the dead
  server left running (the watchdog's work).
- **parse worker kill -9 mid-job**: one of the job's parse processes gets SIGKILL at a
  random moment; the job must still store every file.
- **Redis kill -9 + restart under queries**: a private redis-server (never the shared
  one) is the cache and job store of a server answering retrievals and chats; it dies
  and comes back while they run. No answer may be a 5xx.
- **two servers + CLI delete, re-create, query**: two servers (one with an in-process
  cache, one with Redis) and `ragline ingest`/`ragline delete` change one collection
  while both are queried; a query sent after a delete returned must never answer with
  the deleted text (a stale read).

Then the memory row: a 100 MiB plain-text file uploaded to an idle server (its embedding
pass swapped for a hashed bag of words, see bench/fake_serve.py), its RSS sampled.
Writes ``faults.md``/``.csv`` to bench/results/ (``--quick``: var/bench-quick/).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import procs
from bench.common import environment, write_table

MiB = 2**20
_WORDS = ["harbour", "keeper", "tide", "wind", "boats", "watch", "north", "storm", "calm", "rope"]


@dataclass
class Tally:
    """What one kind of fault did."""

    injections: int = 0
    jobs: int = 0
    jobs_once: int = 0
    stale: int = 0
    lost: int = 0
    duplicated: int = 0
    orphans: int = 0
    errors_5xx: int = 0
    answers: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    server_kills: int
    worker_kills: int
    redis_kills: int
    changes: int
    files_per_job: int
    big_mib: int


FULL = Plan(
    server_kills=13, worker_kills=15, redis_kills=12, changes=12, files_per_job=6, big_mib=100
)
QUICK = Plan(server_kills=2, worker_kills=2, redis_kills=2, changes=3, files_per_job=4, big_mib=10)


def note_text(rng: random.Random, marker: str, sentences: int = 30) -> str:
    """A short document whose one rare word (``marker``) says whose it is."""
    lines = [f"The {marker} ledger belongs to this file."]
    for n in range(sentences):
        lines.append(f"Entry {n}: " + " ".join(rng.choice(_WORDS) for _ in range(12)) + ".")
        if n % 6 == 5:
            lines.append("")
    return "\n".join(lines) + "\n"


def wait_job(http: httpx.Client, job_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        if job.get("status") not in ("queued", "running"):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.get('status')}: {job}")
        time.sleep(0.2)


def documents(http: httpx.Client, collection: str) -> list[str]:
    response = http.get(f"/v1/collections/{collection}/documents")
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return [d["name"] for d in response.json()["data"]]


def retrieved(http: httpx.Client, collection: str, query: str, top_k: int = 8) -> list[str]:
    body = {"collection": collection, "query": query, "top_k": top_k}
    response = http.post("/v1/retrieve", json=body)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return [p["text"] for p in response.json()["passages"]]


def staging(data: Path, collection: str, job_id: str) -> Path:
    """Where an upload job's files wait (api/uploads.py)."""
    return data / "uploads" / collection / ".jobs" / job_id


def check_job(
    tally: Tally, http: httpx.Client, job: dict[str, Any], names: list[str], staging: Path
) -> None:
    """Finished once: succeeded, each file counted once, its uploads gone."""
    tally.jobs += 1
    outcomes = job.get("outcomes", {})
    once = (
        job["status"] == "succeeded"
        and job["files_done"] == job["files_total"] == len(names)
        and sum(outcomes.values()) == len(names)
        and set(outcomes) <= {"ingested", "unchanged", "updated"}
    )
    deadline = time.monotonic() + 10
    while [p for p in staging.rglob("*") if p.is_file()] and time.monotonic() < deadline:
        time.sleep(0.2)
    leftover = [p for p in staging.rglob("*") if p.is_file()] if staging.exists() else []
    if once and not leftover:
        tally.jobs_once += 1
    else:
        tally.notes.append(f"job {job['id']}: {job['status']} {outcomes} {job.get('errors')}")
        if leftover:
            tally.notes.append(f"job {job['id']}: {len(leftover)} uploads left behind")


def check_stored(tally: Tally, http: httpx.Client, collection: str, files: dict[str, str]) -> None:
    """Every file listed once, and its marker found by retrieval (docstore and index)."""
    listed = documents(http, collection)
    for name, marker in files.items():
        count = listed.count(name)
        if count == 0:
            tally.lost += 1
            tally.notes.append(f"{collection}/{name} lost")
        elif count > 1:
            tally.duplicated += count - 1
            tally.notes.append(f"{collection}/{name} stored {count} times")
        elif not any(marker in text for text in retrieved(http, collection, f"{marker} ledger")):
            tally.lost += 1
            tally.notes.append(f"{collection}/{name} listed but not retrievable")


# -- kills during upload jobs ------------------------------------------------------------


class Jobs:
    """Upload jobs into one collection on a server that is killed and restarted."""

    collection = "jobs"

    def __init__(self, root: Path, sampler: procs.RssSampler, rng: random.Random, plan: Plan):
        self.root, self.rng, self.plan = root, rng, plan
        self.data = root / "jobs-var"
        env = {
            "RAGLINE_STORAGE__DATA_DIR": str(self.data),
            "RAGLINE_CACHE__REDIS_URL": "off",
            "RAGLINE_PARSING__WORKERS": "2",
            "RAGLINE_PARSING__BATCH_BYTES": "0",  # a file a task: several tasks to kill
            "RAGLINE_PIPELINE__COMMIT_CHUNKS": "1",  # a commit per file: kills land mid-way
        }
        self.server = sampler.watch(procs.FakeServer(env, root / "jobs-server.log")).start()
        self.files: dict[str, str] = {}
        self.tallies: dict[str, Tally] = {}  # file name -> the tally of its round's fault
        self.round = 0

    def upload(self, tally: Tally) -> tuple[dict[str, Any], list[str]]:
        self.round += 1
        names = []
        parts = []
        for i in range(self.plan.files_per_job):
            name, marker = f"r{self.round:02d}-f{i}.txt", f"mk{self.round}x{i}q"
            text = note_text(self.rng, marker, sentences=self.rng.randint(20, 120))
            parts.append(("files", (name, text.encode())))
            names.append(name)
            self.files[name] = marker
            self.tallies[name] = tally
        with self.server.http() as http:
            response = http.post(f"/v1/collections/{self.collection}/documents", files=parts)
        response.raise_for_status()
        return response.json(), names

    def staging(self, job: dict[str, Any]) -> Path:
        return staging(self.data, self.collection, job["id"])

    def server_kill(self, tally: Tally) -> None:
        job, names = self.upload(tally)
        time.sleep(self.rng.uniform(0.0, 6.0))  # queued, parsing, embedding or writing
        tally.injections += 1
        tally.orphans += self.server.kill9()
        self.server.start()
        with self.server.http() as http:
            check_job(tally, http, wait_job(http, job["id"]), names, self.staging(job))

    def worker_kill(self, tally: Tally) -> None:
        job, names = self.upload(tally)
        deadline = time.monotonic() + 60
        workers = self.server.parse_workers()
        while not workers and time.monotonic() < deadline:
            time.sleep(0.05)
            workers = self.server.parse_workers()
        if workers:
            time.sleep(self.rng.uniform(0.0, 3.0))  # starting up, idle, or mid-file
            victim = self.rng.choice(workers)
            with contextlib.suppress(Exception):
                victim.kill()
                tally.injections += 1
        with self.server.http() as http:
            check_job(tally, http, wait_job(http, job["id"]), names, self.staging(job))

    def final_check(self) -> None:
        """Every file of every round, counted against the fault of its round."""
        with self.server.http() as http:
            for tally in {id(t): t for t in self.tallies.values()}.values():
                files = {n: m for n, m in self.files.items() if self.tallies[n] is tally}
                check_stored(tally, http, self.collection, files)


# -- Redis dies under queries ------------------------------------------------------------


class Traffic:
    """Retrievals and chats sent without pause from a thread; every status counted.
    ``stale`` is called with each answer's texts and the time its request was sent."""

    def __init__(self, url: str, collection: str, queries: list[str]) -> None:
        self.url, self.collection, self.queries = url, collection, queries
        self.statuses: dict[int, int] = {}
        self.answers: list[tuple[float, list[str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        rng = random.Random(7)
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self._stop.is_set():
                query = rng.choice(self.queries)
                sent = time.monotonic()
                body: dict[str, Any]
                try:
                    if rng.random() < 0.7:
                        body = {"collection": self.collection, "query": query}
                        response = http.post("/v1/retrieve", json=body)
                        key, field_name = "passages", "text"
                    else:
                        message = {"role": "user", "content": query}
                        body = {"model": self.collection, "messages": [message], "max_tokens": 8}
                        response = http.post("/v1/chat/completions", json=body)
                        key, field_name = "sources", "text"
                except httpx.TransportError:
                    self.statuses[0] = self.statuses.get(0, 0) + 1
                    time.sleep(0.1)
                    continue
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    texts = [item[field_name] for item in response.json().get(key, [])]
                    self.answers.append((sent, texts))

    @property
    def errors_5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500 or status == 0)


def redis_outages(
    root: Path, sampler: procs.RssSampler, rng: random.Random, plan: Plan, tally: Tally
) -> None:
    redis = procs.PrivateRedis(root)
    redis.start()
    env = {
        "RAGLINE_STORAGE__DATA_DIR": str(root / "redis-var"),
        "RAGLINE_CACHE__REDIS_URL": redis.url,
        "RAGLINE_PARSING__WORKERS": "1",
    }
    server = sampler.watch(procs.FakeServer(env, root / "redis-server.log")).start()
    try:
        files = {f"tide-{i}.txt": f"tq{i}z" for i in range(4)}
        parts = [("files", (n, note_text(rng, m).encode())) for n, m in files.items()]
        with server.http() as http:
            response = http.post("/v1/collections/tides/documents", files=parts)
            response.raise_for_status()
            job = wait_job(http, response.json()["id"])
            check_job(
                tally, http, job, list(files), staging(root / "redis-var", "tides", job["id"])
            )
        queries = [f"{m} ledger" for m in files.values()] + ["which file holds the storm entries?"]
        with Traffic(server.url, "tides", queries) as traffic:
            for _ in range(plan.redis_kills):
                time.sleep(rng.uniform(0.5, 2.0))
                redis.kill()
                tally.injections += 1
                time.sleep(rng.uniform(0.5, 3.0))
                redis.start()  # the same port, empty: no persistence
            time.sleep(2.0)
        tally.errors_5xx += traffic.errors_5xx
        tally.answers += sum(traffic.statuses.values())
        if traffic.errors_5xx:
            tally.notes.append(f"statuses under Redis outages: {traffic.statuses}")
        with server.http() as http:
            check_stored(tally, http, "tides", files)
    finally:
        server.stop()
        redis.kill()


# -- two servers and the CLI change one collection --------------------------------------


class Shared:
    """Servers A (in-process cache) and B (Redis cache and jobs) and the CLI on one data
    dir; ``changes`` rounds each delete what is there (whole collection or one document,
    by the CLI or either server) and add new documents, under query traffic to both."""

    collection = "shared"

    def __init__(self, root: Path, sampler: procs.RssSampler, rng: random.Random) -> None:
        self.root, self.rng = root, rng
        self.data = root / "shared-var"
        self.redis = procs.PrivateRedis(root)
        self.redis.start()
        base = {"RAGLINE_STORAGE__DATA_DIR": str(self.data), "RAGLINE_PARSING__WORKERS": "1"}
        self.cli_env = {**base, "RAGLINE_CACHE__REDIS_URL": "off"}
        self.a = sampler.watch(procs.FakeServer(self.cli_env, root / "a.log")).start()
        b_env = {**base, "RAGLINE_CACHE__REDIS_URL": self.redis.url}
        self.b = sampler.watch(procs.FakeServer(b_env, root / "b.log")).start()
        self.inbox = root / "shared-files"
        self.inbox.mkdir()
        self.version = 0
        self.live: dict[str, str] = {}  # file name -> marker, as stored now
        self.sources: dict[str, str] = {}  # file name -> its source (a CLI path or an upload)
        self.deleted: list[tuple[float, str]] = []  # (when the delete returned, marker)

    def write_version(self, count: int) -> list[Path]:
        self.version += 1
        paths = []
        for i in range(count):
            marker = f"sv{self.version}x{i}k"
            path = self.inbox / f"v{self.version}-{i}.txt"
            path.write_text(note_text(self.rng, marker, sentences=12))
            paths.append(path)
            self.live[path.name] = marker
        return paths

    def forget(self, names: list[str]) -> None:
        now = time.monotonic()
        for name in names:
            self.deleted.append((now, self.live.pop(name)))

    def add(self, tally: Tally, paths: list[Path]) -> None:
        if self.rng.random() < 0.5:
            result = procs.cli(self.cli_env, "ingest", *map(str, paths), "-c", self.collection)
            if result.returncode:
                raise RuntimeError(result.stdout + result.stderr)
            self.sources.update((p.name, str(p)) for p in paths)
            return
        server = self.rng.choice([self.a, self.b])
        parts = [("files", (p.name, p.read_bytes())) for p in paths]
        with server.http() as http:
            response = http.post(f"/v1/collections/{self.collection}/documents", files=parts)
            response.raise_for_status()
            job = wait_job(http, response.json()["id"])
            folder = staging(self.data, self.collection, job["id"])
            check_job(tally, http, job, [p.name for p in paths], folder)
        for path in paths:
            self.sources[path.name] = str(self.data / "uploads" / self.collection / path.name)

    def remove(self) -> str:
        """Delete the collection or one document, by the CLI or a server; says how."""
        how = self.rng.choice(["cli --all", "cli file", "api collection", "api document"])
        for _attempt in range(30):  # 409 while the other server's job still writes
            if how == "cli --all":
                done = (
                    procs.cli(self.cli_env, "delete", "--all", "-c", self.collection).returncode
                    == 0
                )
                names = list(self.live)
            elif how == "cli file":
                name = self.rng.choice(sorted(self.live))
                result = procs.cli(
                    self.cli_env, "delete", self.sources[name], "-c", self.collection
                )
                done, names = result.returncode == 0, [name]
            else:
                server = self.rng.choice([self.a, self.b])
                with server.http() as http:
                    if how == "api collection":
                        response = http.delete(f"/v1/collections/{self.collection}")
                        names = list(self.live)
                    else:
                        name = self.rng.choice(sorted(self.live))
                        response = http.delete(
                            f"/v1/collections/{self.collection}/documents/{name}"
                        )
                        names = [name]
                done = response.status_code == 200
            if done:
                self.forget(names)
                return how
            time.sleep(1)
        raise RuntimeError(f"{how} kept failing")

    def run(self, tally: Tally, changes: int) -> None:
        self.add(tally, self.write_version(3))
        queries = [
            "which ledger belongs to this file?",
            "storm entries at dawn",
            "the keeper's rope",
        ]
        with (
            Traffic(self.a.url, self.collection, queries) as on_a,
            Traffic(self.b.url, self.collection, queries) as on_b,
        ):
            for _ in range(changes):
                time.sleep(self.rng.uniform(0.5, 2.0))  # both caches fill meanwhile
                self.remove()
                tally.injections += 1
                self.add(tally, self.write_version(self.rng.randint(1, 3)))
                for server in (self.a, self.b):  # each asked right after, for every marker
                    with server.http() as http:
                        sent = time.monotonic()
                        texts = [
                            t
                            for _, m in self.deleted[-6:]
                            for t in retrieved(http, self.collection, f"{m} ledger")
                        ]
                        on_a.answers.append((sent, texts))
            time.sleep(1.0)
        for traffic in (on_a, on_b):
            if traffic.errors_5xx:
                tally.notes.append(f"statuses from {traffic.url}: {traffic.statuses}")
            tally.errors_5xx += traffic.errors_5xx
            tally.answers += sum(traffic.statuses.values())
            tally.stale += self.stale_reads(traffic.answers)
        for server in (self.a, self.b):
            with server.http() as http:
                check_stored(tally, http, self.collection, self.live)

    def stale_reads(self, answers: list[tuple[float, list[str]]]) -> int:
        stale = 0
        for sent, texts in answers:
            gone = [m for when, m in self.deleted if when < sent]
            if any(m in text for m in gone for text in texts):
                stale += 1
        return stale

    def close(self) -> None:
        for server in (self.a, self.b):
            server.stop()
        self.redis.kill()


# -- a 100 MiB text ----------------------------------------------------------------------


def big_text(path: Path, mib: int, seed: int = 12) -> Path:
    """Varied lines, blank-line paragraphs: plain text inside every limit."""
    rng = random.Random(seed)
    with path.open("w") as out:
        size, n = 0, 0
        while size < mib * MiB - 200:
            n += 1
            line = f"Watch {n}: " + " ".join(rng.choice(_WORDS) for _ in range(9)) + ".\n"
            line += "\n" if n % 5 == 0 else ""
            out.write(line)
            size += len(line)
    return path


@dataclass
class Memory:
    mib: int
    idle_mb: float
    peak_mb: float
    child_peak_mb: float
    seconds: float
    outcome: str


def sample_while(server: procs.FakeServer, busy: Callable[[], bool]) -> tuple[int, int]:
    """Peak RSS of the server process and of its largest child while ``busy()``."""
    peak = child = 0
    while busy():
        with contextlib.suppress(Exception):
            peak = max(peak, procs.rss(server.pid))
        for process in server.children():
            with contextlib.suppress(Exception):
                child = max(child, process.memory_info().rss)
        time.sleep(0.1)
    return peak, child


def big_upload(root: Path, mib: int) -> Memory:
    """Upload a ``mib`` MiB text to an idle server and sample its memory until the job ends."""
    text = big_text(root / "big.txt", mib)
    env = {
        "RAGLINE_STORAGE__DATA_DIR": str(root / "big-var"),
        "RAGLINE_CACHE__REDIS_URL": "off",
        "RAGLINE_PARSING__WORKERS": "1",
        "RAGLINE_API__MAX_UPLOAD_MB": str(mib + 1),
    }
    server = procs.FakeServer(env, root / "big-server.log", hash_embed=True).start()
    try:
        time.sleep(3)
        idle = procs.rss(server.pid)
        started = time.monotonic()
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def upload() -> None:
            try:
                with server.http(timeout=900) as http, text.open("rb") as handle:
                    response = http.post(
                        "/v1/collections/big/documents", files=[("files", ("big.txt", handle))]
                    )
                    response.raise_for_status()
                    outcome.update(wait_job(http, response.json()["id"], timeout=1800))
            except Exception as exc:  # reported in the table
                outcome["error"] = repr(exc)
            finally:
                done.set()

        threading.Thread(target=upload, daemon=True).start()
        peak, child = sample_while(server, lambda: not done.is_set())
        seconds = time.monotonic() - started
        if "error" in outcome:
            result = outcome["error"]
        else:
            result = f"{outcome['status']}, {outcome['outcomes']}"
            with server.http() as http:
                chunks = http.get("/v1/collections/big").json().get("chunks")
            result += f", {chunks} chunks"
        return Memory(mib, idle / MiB, max(peak, idle) / MiB, child / MiB, seconds, result)
    finally:
        server.stop()


# -- the run -----------------------------------------------------------------------------


def run(plan: Plan, seed: int, root: Path) -> tuple[dict[str, Tally], Memory, procs.RssSampler]:
    rng = random.Random(seed)
    started = time.monotonic()

    def elapsed() -> str:
        return f"{time.monotonic() - started:.0f} s"

    tallies = {
        kind: Tally()
        for kind in ("server kill -9 mid-job", "parse worker kill -9 mid-job",
                     "Redis kill -9 + restart under queries",
                     "2 servers + CLI: delete, re-create, query")
    }  # fmt: skip
    server_kills, worker_kills, redis_kills, changes = tallies.values()
    with procs.RssSampler() as sampler:
        jobs = Jobs(root, sampler, rng, plan)
        try:
            kinds = ["server"] * plan.server_kills + ["worker"] * plan.worker_kills
            rng.shuffle(kinds)
            for n, kind in enumerate(kinds, 1):
                if kind == "server":
                    jobs.server_kill(server_kills)
                else:
                    jobs.worker_kill(worker_kills)
                print(f"  job {n}/{len(kinds)}: {kind} kill, {elapsed()}", flush=True)
            jobs.final_check()
        finally:
            jobs.server.stop()
        print(f"  redis outages, {elapsed()}", flush=True)
        redis_outages(root, sampler, rng, plan, redis_kills)
        print(f"  two servers and the CLI, {elapsed()}", flush=True)
        shared = Shared(root, sampler, rng)
        try:
            shared.run(changes, plan.changes)
        finally:
            shared.close()
    print(f"  {plan.big_mib} MiB text upload, {elapsed()}", flush=True)
    memory = big_upload(root, plan.big_mib)
    return tallies, memory, sampler


def table(
    tallies: dict[str, Tally], memory: Memory, sampler: procs.RssSampler
) -> list[list[object]]:
    rows: list[list[object]] = []
    total = Tally()
    for kind, t in tallies.items():
        jobs = f"{t.jobs_once}/{t.jobs}" if t.jobs else "-"
        rows.append(
            [kind, t.injections, jobs, t.stale, t.lost, t.duplicated, t.orphans, t.errors_5xx, "-"]
        )
        for name in (
            "injections",
            "jobs",
            "jobs_once",
            "stale",
            "lost",
            "duplicated",
            "orphans",
            "errors_5xx",
        ):
            setattr(total, name, getattr(total, name) + getattr(t, name))
    peaks = f"server {sampler.server_peak / MiB:.0f} / child {sampler.child_peak / MiB:.0f}"
    rows.append(["total", total.injections, f"{total.jobs_once}/{total.jobs}", total.stale,
                 total.lost, total.duplicated, total.orphans, total.errors_5xx, peaks])  # fmt: skip
    growth = memory.peak_mb - memory.idle_mb
    rows.append([
        f"{memory.mib} MiB plain-text upload (no fault)", 0, memory.outcome,
        "-", "-", "-", "-", "-",
        f"server idle {memory.idle_mb:.0f} → peak {memory.peak_mb:.0f} (+{growth:.0f}); "
        f"parse worker peak {memory.child_peak_mb:.0f}",
    ])  # fmt: skip
    return rows


HEADER = [
    "fault", "injections", "jobs finished exactly once", "stale reads", "documents lost",
    "duplicated documents", "orphan processes", "5xx or dropped", "peak RSS MB",
]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few of each; var/bench-quick/")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    if args.quick and not os.environ.get("RAGLINE_BENCH_RESULTS"):
        from bench import common

        common.RESULTS = Path(__file__).resolve().parent.parent / "var" / "bench-quick"
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ragline-faults-") as tmp:
        tallies, memory, sampler = run(plan, args.seed, Path(tmp))
        notes_found = [f"{kind}: {n}" for kind, t in tallies.items() for n in t.notes[:10]]
    minutes = (time.monotonic() - started) / 60
    rows = table(tallies, memory, sampler)
    answers = sum(t.answers for t in tallies.values())
    notes = [
        f"`python -m bench.faults{' --quick' if args.quick else ''}` (seed {args.seed}): "
        f"{minutes:.1f} minutes.",
        environment(["ragline", "pebble", "redis", "uvicorn"]),
        "Servers run `ragline serve` with a scripted generation engine (bench/fake_serve.py); "
        "embedding, retrieval, ingestion jobs, caches and the watchdog are ragline's own. "
        f"Kill moments are random (uniform over 0-6 s into a job, 0-3 s into a parse "
        f"worker's life); {answers} queries were answered or refused during the Redis "
        "outages and the concurrent changes.",
        "Jobs finished exactly once: succeeded, every file counted once, the upload folder "
        "removed. Documents lost: a file not listed, or listed but not found by its marker "
        "word. Stale reads: an answer, to a query sent after a delete returned, holding a "
        "deleted document's text. Orphans: children of a killed server still running 20 s "
        "later. Peak RSS: the servers and their children (parse workers), each process alone.",
        "The large upload's embedding pass is a hashed bag of words (the real model would "
        "take ~40 minutes for its ~110,000 chunks on 2 cores): the memory measured is the "
        "ingestion path around it, streaming parse, chunking, token counts, commits.",
        *notes_found,
    ]
    write_table("faults", "Fault injection", HEADER, rows, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
