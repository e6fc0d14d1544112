"""Embedding and reranking per runtime (torch fp32/bf16, OpenVINO fp32/bf16/int8, and
what ``auto`` chose), against a plain sentence-transformers fp32 loop in the same run, and
against the GEMM rate measured in the same run at each precision.

    python -m bench.backends [--passages N] [--repeats R] [--quick] [--name NAME]

Passages are SciFact abstracts cut to 85 and to 256 tokens of the model's tokenizer (short
and full chunks). Per repeat every runtime encodes the same passages, in a rotated order,
so a burst of other work on the machine slows them alike. Quality: mean and minimum
cosine of each runtime's vectors to torch fp32 ones on the same passages. The ceiling: a
passage's matrix-multiply FLOPs (bench/flops.py) times passages/s, over the GEMM rate at
the runtime's precision (bench/gemm.py: the faster of torch's square GEMM and the model's
own matrix products run alone). The reranker (when ``ragline reranker train`` has made
it): bench/rerank_runtimes.py, each runtime's rerank@20 p50 next to its SciFact nDCG@10.
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
from bench.gemm import SQUARE, Ceilings
from bench.peers.plain import encode_rate
from bench.rerank_runtimes import runtimes
from bench.rerank_runtimes import write as write_rerank_table
from ragline.ingest.embed import Embedder
from ragline.ingest.runtime import SPEED_FLAGS, cpu_flags, cpu_name, openvino_available
from ragline.ingest.tokens import HFTokenCounter
from ragline.settings import EmbeddingSettings

SCIFACT = SHARED_DATA / "beir" / "scifact" / "corpus.jsonl"
LENGTHS = (85, 256)
PLAIN = "plain SentenceTransformer fp32 (peer)"
PACKAGES = ("torch", "sentence-transformers", "openvino", "nncf", "onnxruntime")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--queries", type=int, help="SciFact test queries reranked per runtime (default: all)"
    )
    parser.add_argument("--rerank-model", help="rerank.model to time (default: the settings')")
    parser.add_argument("--quick", action="store_true", help="64 passages, 1 repeat")
    parser.add_argument(
        "--name",
        default="backends",
        help="results name (another class of CPU keeps its own: backends-avx2)",
    )
    args = parser.parse_args()
    if args.quick:
        args.passages, args.repeats, args.queries = 64, 1, 8
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
    # The matrix products alone over one pass's worth of tokens (the batch budget).
    ceilings = Ceilings(shape, auto.batch_tokens, openvino_available("int8"))
    ceilings.measure()
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
            ceilings.measure(seconds=0.5)
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
        ceiling = ceilings.found[precision].best / flops[row.tokens]
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
        ceiling = ceilings.found["fp32"].best / flops[tokens]
        table.append(
            [PLAIN, tokens, spread(plain_rates[tokens], 1), "1.00x",
             f"{100 * statistics.median(plain_rates[tokens]) / ceiling:.0f}%", "1 / 1", "-"]
        )  # fmt: skip
    notes = [
        environment(PACKAGES),
        f"CPU: {cpu_name()}, with {', '.join(sorted(cpu_flags() & SPEED_FLAGS))}.",
        f"{args.passages} SciFact passages per length, {args.repeats} repeats, rotated order.",
        "GEMM ceiling per precision: the faster of torch's square GEMM "
        f"({SQUARE}x{SQUARE}) and the model's own matrix products alone (OpenVINO, "
        f"{ceilings.chain.rows if ceilings.chain else 0} tokens at once), best of those timed "
        "between repeats: "
        + ", ".join(
            f"{p} {c.square / 1e9:.0f} / {c.layers / 1e9:.0f} G/s"
            for p, c in ceilings.found.items()
        )
        + "; a passage's FLOPs from bench/flops.py (matrix products and attention).",
        f"auto chose {chosen.runtime.name} ({chosen.reason}) in {choice_seconds:.0f} s, once "
        "per machine: exports, int8 calibration, gate and timing.",
    ]
    write_table(args.name, "Embedding per runtime", header, table, notes)

    try:
        write_rerank_table(exports, args.rerank_model, args.queries, f"{args.name}-rerank")
    except FileNotFoundError as exc:  # no reranker trained here
        print(f"reranker rows skipped: {exc}")

    panels = [
        Panel(
            f"{tokens}-token passages",
            "passages/s",
            [Bar(r.runtime, r.rates) for r in rows if r.tokens == tokens]
            + [Bar("plain fp32 loop", plain_rates[tokens], peer=True)],
        )
        for tokens in LENGTHS
    ]
    write_plot(args.name, "Embedding per runtime", panels)


if __name__ == "__main__":
    main()
