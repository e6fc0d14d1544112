"""Embedding and reranking per runtime (torch fp32/bf16, OpenVINO fp32/bf16/int8, and
what ``auto`` chose), against a plain sentence-transformers fp32 loop in the same run, and
against the GEMM rate measured in the same run at each precision.

    python -m bench.backends [--passages N] [--repeats R] [--quick]

Passages are SciFact abstracts cut to 85 and to 256 tokens of the model's tokenizer (short
and full chunks). Per repeat every runtime encodes the same passages, in a rotated order,
so a burst of other work on the machine slows them alike. Quality: mean and minimum
cosine of each runtime's vectors to torch fp32 ones on the same passages. The ceiling: a
passage's matrix-multiply FLOPs (bench/flops.py) times passages/s, over torch's own
1024x1024 GEMM rate at the runtime's precision (int8: ``torch._int_mm``). The reranker
(when ``ragline reranker train`` has made it): p50 of a depth-20 rerank per runtime, and
the rank correlation of its scores with fp32 ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import (
    SHARED_DATA,
    Bar,
    Panel,
    environment,
    ratio_spread,
    speed_ratios,
    spread,
    write_plot,
    write_table,
)
from bench.flops import EncoderShape, mean_encoder_flops
from bench.peers.plain import encode_rate
from ragline.ingest.embed import Embedder
from ragline.ingest.runtime import PREFERENCE, openvino_available
from ragline.ingest.tokens import HFTokenCounter
from ragline.retrieve.rerank import CrossEncoderReranker, mean_rank_correlation
from ragline.settings import EmbeddingSettings, RerankSettings, load_settings

SCIFACT = SHARED_DATA / "beir" / "scifact" / "corpus.jsonl"
LENGTHS = (85, 256)
PLAIN = "plain SentenceTransformer fp32 (peer)"
GEMM_SIZE = 1024
PACKAGES = ("torch", "sentence-transformers", "openvino", "nncf")


@dataclass(slots=True)
class Row:
    runtime: str
    tokens: int
    rates: list[float] = field(default_factory=list)
    cosine_mean: float = 1.0
    cosine_min: float = 1.0


def passages(count: int, tokens: int, counter: HFTokenCounter) -> list[str]:
    """The first ``count`` SciFact abstracts with at least ``tokens`` tokens, cut there."""
    found = []
    for line in SCIFACT.read_text().splitlines():
        text = json.loads(line)["text"]
        windows = counter.windows(text, tokens, 0)
        if len(windows) > 1:
            found.append(windows[0])
        if len(found) == count:
            return found
    raise ValueError(f"SciFact has fewer than {count} abstracts of {tokens} tokens")


def gemm_rate(precision: str, seconds: float = 1.0) -> float:
    """FLOP/s (int8: OP/s) of torch's matrix multiply at ``precision``, best of rounds."""
    import torch

    size = GEMM_SIZE
    if precision == "int8":
        a = torch.randint(-128, 127, (size, size), dtype=torch.int8)
        b = torch.randint(-128, 127, (size, size), dtype=torch.int8)

        def multiply() -> object:
            return torch._int_mm(a, b)
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        x, y = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)

        def multiply() -> object:
            return torch.mm(x, y)

    for _ in range(3):
        multiply()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(4):
            multiply()
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - started))
    return best


def runtimes() -> list[tuple[str, str]]:
    return [(b, p) for b, p in PREFERENCE if b == "torch" or openvino_available(p)]


def rerank_rows(
    exports: Path, repeats: int, texts: list[str], queries: list[str]
) -> list[list[object]]:
    settings = load_settings()
    try:
        base = CrossEncoderReranker(settings.rerank, settings.models_dir, exports)
    except FileNotFoundError as exc:
        print(f"reranker rows skipped: {exc}")
        return []
    rerankers = {
        f"{b}-{p}": CrossEncoderReranker(
            RerankSettings(**{**settings.rerank.model_dump(), "backend": b, "precision": p}),
            settings.models_dir,
            exports,
        )
        for b, p in runtimes()
    }
    del base
    groups = np.repeat(np.arange(len(queries)), 20)
    candidates = [
        texts[(i * 7) % len(texts) : (i * 7) % len(texts) + 20] for i in range(len(queries))
    ]
    candidates = [c if len(c) == 20 else texts[:20] for c in candidates]
    latencies: dict[str, list[float]] = {name: [] for name in rerankers}
    scores: dict[str, np.ndarray] = {}
    for repeat in range(repeats):
        order = list(rerankers.items())
        order = order[repeat % len(order) :] + order[: repeat % len(order)]
        for name, reranker in order:
            reranker.score(queries[0], candidates[0])  # load, compile
            got = []
            for query, passages_ in zip(queries, candidates, strict=True):
                started = time.perf_counter()
                got.append(reranker.score(query, passages_))
                latencies[name].append(1000 * (time.perf_counter() - started))
            scores[name] = np.concatenate(got)
    reference = scores["torch-fp32"]
    rows: list[list[object]] = []
    for name in rerankers:
        correlation = mean_rank_correlation(reference, scores[name], groups)
        p50 = statistics.median(latencies[name])
        ratio = statistics.median(latencies["torch-fp32"]) / p50
        rows.append([name, f"{p50:.0f}", f"{ratio:.2f}x", f"{correlation:.4f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--queries", type=int, default=20, help="reranked queries per runtime")
    parser.add_argument("--quick", action="store_true", help="64 passages, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.passages, args.repeats, args.queries = 64, 1, 4
    if not SCIFACT.exists():
        raise SystemExit(f"SciFact not found at {SCIFACT}")

    exports = Path(tempfile.mkdtemp(prefix="ragline-backends-"))  # fresh exports, timed
    embedders: dict[str, Embedder] = {}
    for backend, precision in runtimes():
        settings = EmbeddingSettings(backend=backend, precision=precision)  # type: ignore[arg-type]
        embedders[f"{backend}-{precision}"] = Embedder(settings, exports)
    auto = Embedder(EmbeddingSettings(), exports)
    reference = embedders["torch-fp32"]
    counter = HFTokenCounter(reference.model_path)
    shape = EncoderShape.from_config(reference.model_path)
    started = time.perf_counter()
    chosen = auto.runtime
    choice_seconds = time.perf_counter() - started
    for embedder in embedders.values():
        embedder.encode(["warm up"])

    rows: list[Row] = []
    gemm = {precision: gemm_rate(precision) for precision in ("fp32", "bf16", "int8")}
    plain_rates: dict[int, list[float]] = {}
    flops: dict[int, float] = {}
    for tokens in LENGTHS:
        texts = passages(args.passages, tokens, counter)
        flops[tokens] = mean_encoder_flops(shape, [n + 2 for n in counter.count(texts)])
        by_name = {name: Row(name, tokens) for name in embedders}
        plain_rates[tokens] = []
        vectors: dict[str, np.ndarray] = {}
        systems: list[tuple[str, Callable[[], float]]] = [
            (PLAIN, lambda t=texts: encode_rate(reference.model, t, 64))  # type: ignore[misc]
        ]
        for name, embedder in embedders.items():

            def run(
                e: Embedder = embedder,
                n: str = name,
                t: list[str] = texts,
                out: dict[str, np.ndarray] = vectors,
            ) -> float:
                begun = time.perf_counter()
                out[n] = e.encode(t)
                return len(t) / (time.perf_counter() - begun)

            systems.append((name, run))
        for repeat in range(args.repeats):
            turn = repeat % len(systems)
            for name, measure in systems[turn:] + systems[:turn]:
                rate = measure()
                (plain_rates[tokens] if name == PLAIN else by_name[name].rates).append(rate)
            # The ceiling is timed between repeats too, best kept: a GEMM timed while
            # something else ran would put the passages above it.
            for precision in gemm:
                gemm[precision] = max(gemm[precision], gemm_rate(precision, seconds=0.5))
        for name, row in by_name.items():
            cosines = np.sum(vectors["torch-fp32"] * vectors[name], axis=1)
            row.cosine_mean, row.cosine_min = float(cosines.mean()), float(cosines.min())
        rows.extend(by_name.values())

    header = [
        "runtime",
        "tokens",
        "passages/s",
        "÷ plain fp32 loop",
        "% of GEMM rate at its precision",
        "cosine to fp32 mean / min",
        "gate (≥ 0.99)",
    ]
    table = []
    for row in rows:
        precision = row.runtime.split("-")[1]
        ceiling = gemm[precision] / flops[row.tokens]
        chosen_mark = " (auto)" if row.runtime == chosen.runtime.name else ""
        table.append(
            [
                row.runtime + chosen_mark,
                row.tokens,
                spread(row.rates, 1),
                ratio_spread(speed_ratios(row.rates, plain_rates[row.tokens])),
                f"{100 * statistics.median(row.rates) / ceiling:.0f}%",
                f"{row.cosine_mean:.5f} / {row.cosine_min:.5f}",
                "pass" if row.cosine_mean >= 0.99 else "fail",
            ]
        )
    for tokens in LENGTHS:
        ceiling = gemm["fp32"] / flops[tokens]
        table.append(
            [PLAIN, tokens, spread(plain_rates[tokens], 1), "1.00x",
             f"{100 * statistics.median(plain_rates[tokens]) / ceiling:.0f}%", "1 / 1", "-"]
        )  # fmt: skip
    notes = [
        environment(PACKAGES),
        f"{args.passages} SciFact passages per length, {args.repeats} repeats, rotated order.",
        "GEMM rates, best of those timed between repeats (torch, "
        f"{GEMM_SIZE}x{GEMM_SIZE}): "
        + ", ".join(f"{p} {rate / 1e9:.0f} G/s" for p, rate in gemm.items())
        + "; a passage's FLOPs from bench/flops.py (matrix products and attention).",
        f"auto chose {chosen.runtime.name} ({chosen.reason}) in {choice_seconds:.0f} s, once "
        "per machine: exports, int8 calibration, gate and timing.",
    ]
    write_table("backends", "Embedding per runtime", header, table, notes)

    reranked = rerank_rows(exports, args.repeats, passages(200, 200, counter), [
        json.loads(line)["title"] for line in SCIFACT.read_text().splitlines()[: args.queries]
    ])  # fmt: skip
    if reranked:
        write_table(
            "backends-rerank",
            "Rerank@20 per runtime",
            ["runtime", "p50 ms", "speed ÷ torch fp32", "rank correlation to fp32"],
            reranked,
            [
                environment(PACKAGES),
                f"{args.queries} SciFact titles as queries, 20 passages each; reranker "
                f"{load_settings().rerank.model} (`rerank.model`).",
            ],
        )

    panels = [
        Panel(
            f"{tokens}-token passages",
            "passages/s",
            [Bar(r.runtime, r.rates) for r in rows if r.tokens == tokens]
            + [Bar("plain fp32 loop", plain_rates[tokens], peer=True)],
        )
        for tokens in LENGTHS
    ]
    write_plot("backends", "Embedding per runtime", panels)


if __name__ == "__main__":
    main()
