"""Ingestion throughput against LlamaIndex, with a plain sentence-transformers loop as the
floor and the CPU's FLOP limit as the ceiling.

    python -m bench.ingest [PATH ...] [--scifact-docs N] [--short-files N] [--repeats R]

Four corpora: files (default samples/), N short generated text files (100-3,000
characters each, bench/short_files.py), the first N files of example-docs (mixed types,
broken ones included), all three also from files, and the first N SciFact abstracts as
records.
Per repeat, in the same process and rotating the order:
- ragline from files: parse (unstructured) → chunk → embed → write, into a fresh collection;
- ragline from parsed documents: chunk → embed → write (``IngestPipeline.ingest_documents``);
- LlamaIndex from the same files: SimpleDirectoryReader (llama-index-readers-file) →
  the pipeline below;
- LlamaIndex from the same parsed text: IngestionPipeline (SentenceSplitter with the same
  chunk size/overlap in the same model's tokens → HuggingFaceEmbedding on the same model
  folder) → FAISS-backed VectorStoreIndex, persisted (bench/peers/llamaindex.py);
- plain encode: ragline's chunk texts through a bare ``SentenceTransformer.encode``.
docs/s is compared from files (each system's own readers; a file a system gets no text
from does not count for it: LlamaIndex's readers for images and PPTX need hub models,
unavailable offline) and from the same parsed text.
Embeddings/s is set against the model's FLOP bound on this CPU (bench/flops.py).
With Ray installed (the ``ray`` extra), the Ray executor on a two-node loopback cluster
is also run against the local executor on the same files (bench/ingest_ray.py,
ingest-ray.md; ``--only-ray`` for that table alone, ``--no-ray`` to skip it).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import ingest_ray
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
from bench.flops import (
    EncoderShape,
    cpu_peak,
    mean_encoder_flops,
    passages_per_s_bound,
)
from bench.gemm import square_rate
from bench.peers import llamaindex
from bench.peers.plain import encode_rate
from bench.short_files import write_short_files
from ragline.evaluation.beir import BeirDataset, load_beir
from ragline.evaluation.evaluate import beir_documents
from ragline.ingest.chunk import Chunker
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder, pick_device
from ragline.ingest.parallel import parse_files
from ragline.ingest.pipeline import IngestPipeline, IngestReport, Status, discover
from ragline.ingest.tokens import HFTokenCounter
from ragline.ingest.types import ParsedDocument
from ragline.service.components import Components
from ragline.settings import PROJECT_ROOT, Settings, load_settings

DEFAULT_SCIFACT = SHARED_DATA / "beir" / "scifact"
RAGLINE_FILES = "ragline, from files (parse → chunk → embed → write)"
RAGLINE = "ragline (chunk → embed → write)"
PLAIN = "plain SentenceTransformer.encode (floor)"


@dataclass(slots=True)
class Series:
    """One system on one corpus: a figure per repeat."""

    docs: int = 0
    chunks: int = 0
    docs_s: list[float] = field(default_factory=list)
    chunks_s: list[float] = field(default_factory=list)
    emb_s: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list, repr=False)  # what was embedded


@dataclass(slots=True)
class Corpus:
    name: str
    documents: list[ParsedDocument]
    paths: list[str] | None = None  # files: also run ragline from the files themselves


def document_text(document: ParsedDocument) -> str:
    """A parsed document as the plain text a LlamaIndex Document holds."""
    return "\n\n".join(element.text for element in document.elements if element.text.strip())


def scifact_subset(root: Path, docs: int) -> list[ParsedDocument]:
    data = load_beir(root, "test")
    corpus = dict(list(data.corpus.items())[:docs])
    return beir_documents(BeirDataset(corpus, {}, {}))


def _run_ragline(
    settings: Settings, embedder: Embedder, work: Callable[[IngestPipeline], IngestReport]
) -> IngestReport:
    with tempfile.TemporaryDirectory() as tmp:
        local = settings.model_copy(deep=True)
        local.storage.data_dir = Path(tmp)
        store = Collection.open(local.storage.collections_dir, "bench", local.index, create=True)
        try:
            return work(IngestPipeline(local, store, embedder=embedder))
        finally:
            store.close()


def _add(series: Series, docs: int, chunks: int, seconds: float, embed_seconds: float) -> None:
    series.docs, series.chunks = docs, chunks
    series.docs_s.append(docs / seconds)
    series.chunks_s.append(chunks / seconds)
    if embed_seconds > 0:  # a run that embedded nothing has no rate
        series.emb_s.append(chunks / embed_seconds)


def measure(
    corpus: Corpus,
    settings: Settings,
    embedder: Embedder,
    peer: llamaindex.LlamaIndexPeer | None,
    repeats: int,
) -> dict[str, Series]:
    chunker = Chunker(settings.chunking, HFTokenCounter(embedder.model_path))
    ragline_texts = [c.text for d in corpus.documents if d.ok for c in chunker.run(d)]
    pairs = [(d.source, document_text(d)) for d in corpus.documents if d.ok]
    peer_name = f"LlamaIndex {llamaindex.version()} (IngestionPipeline → VectorStoreIndex)"
    peer_files_name = (
        f"LlamaIndex {llamaindex.version()}, from files "
        "(SimpleDirectoryReader → IngestionPipeline → VectorStoreIndex)"
    )
    files = discover(corpus.paths) if corpus.paths else []
    out: dict[str, Series] = {}
    if corpus.paths:
        out[RAGLINE_FILES] = Series(texts=ragline_texts)
        if peer is not None:
            out[peer_files_name] = Series()
    out[RAGLINE] = Series(texts=ragline_texts)
    if peer is not None:
        out[peer_name] = Series()
    out[PLAIN] = Series(texts=ragline_texts)

    def ragline(name: str, run: Callable[[IngestPipeline], IngestReport]) -> Callable[[], None]:
        def step() -> None:
            report = _run_ragline(settings, embedder, run)
            _add(
                out[name],
                report.count(Status.INGESTED),
                report.chunks_embedded,
                report.seconds,
                report.embed_seconds,
            )

        return step

    ragline_files = ragline(RAGLINE_FILES, lambda p: p.run([str(f) for f in files]))
    ragline_parsed = ragline(RAGLINE, lambda p: p.ingest_documents(corpus.documents))

    def llama() -> None:
        assert peer is not None
        with tempfile.TemporaryDirectory() as tmp:
            run = peer.ingest(pairs, Path(tmp))
        _add(out[peer_name], len(pairs), run.nodes, run.seconds, run.embed_seconds)
        out[peer_name].texts = run.texts

    def llama_files() -> None:
        assert peer is not None
        with tempfile.TemporaryDirectory() as tmp:
            run = peer.ingest_files(files, Path(tmp))
        _add(out[peer_files_name], run.files, run.nodes, run.seconds, run.embed_seconds)
        out[peer_files_name].texts = run.texts

    def plain() -> None:
        rate = encode_rate(embedder.model, ragline_texts, settings.embedding.batch_size)
        series = out[PLAIN]
        series.chunks = len(ragline_texts)
        series.emb_s.append(rate)

    steps: list[Callable[[], None]] = [ragline_parsed, plain]
    if corpus.paths:
        steps.insert(0, ragline_files)
    if peer is not None:
        steps.insert(1, llama)
        if corpus.paths:
            steps.insert(1, llama_files)
    for repeat in range(repeats):
        shift = repeat % len(steps)  # rotate the order: no system always runs first
        for step in steps[shift:] + steps[:shift]:
            step()
        print(f"  {corpus.name}: repeat {repeat + 1}/{repeats} done", flush=True)
    return out


def short_label(name: str) -> str:
    """A system's name as a plot label."""
    labels = {RAGLINE_FILES: "ragline, from files", RAGLINE: "ragline, parsed text"}
    return labels.get(name, name.split(" (")[0])


def token_counts(embedder: Embedder, texts: Sequence[str]) -> list[int]:
    """Tokens per passage as the model sees them: special tokens in, truncated."""
    model = embedder.model
    encoded = model.tokenizer(
        list(texts), truncation=True, max_length=model.max_seq_length, verbose=False
    )["input_ids"]
    return [len(ids) for ids in encoded]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("paths", nargs="*", default=[str(PROJECT_ROOT / "samples")])
    parser.add_argument("--scifact", type=Path, default=DEFAULT_SCIFACT, help="BEIR SciFact folder")
    parser.add_argument("--scifact-docs", type=int, default=150, help="first N abstracts (0: none)")
    parser.add_argument(
        "--short-files", type=int, default=1000, help="generated short text files (0: none)"
    )
    parser.add_argument(
        "--example-docs",
        type=int,
        default=32,
        help="example-docs files (the first N under 512 kB, as the Ray table takes; 0: none)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 repeats, 40 abstracts")
    parser.add_argument(
        "--ray",
        action=argparse.BooleanOptionalAction,
        default=importlib.util.find_spec("ray") is not None,
        help="also the Ray executor vs the local one (ingest-ray.md; default: if installed)",
    )
    parser.add_argument("--only-ray", action="store_true", help="only that comparison")
    parser.add_argument(
        "--ray-files", type=Path, default=SHARED_DATA / "example-docs", help="its files"
    )
    parser.add_argument("--ray-sizes", default="8,32", help="its two corpus sizes, in files")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.scifact_docs = 2, min(args.scifact_docs, 40)
        args.short_files = min(args.short_files, 200)
        args.example_docs = min(args.example_docs, 8)

    settings = load_settings()
    embedder = Components(settings).embedder
    embedder.encode(["warm up"])
    if args.ray or args.only_ray:
        compare_executors(args, settings, embedder)
    if args.only_ray:
        return
    peer_version = llamaindex.version()
    peer = None
    if peer_version is not None:
        peer = llamaindex.LlamaIndexPeer(
            embedder.model_path,
            settings.chunking.size,
            settings.chunking.overlap,
            settings.embedding.batch_size,
        )
    else:
        print(llamaindex.MISSING)

    files = [p for p in discover(args.paths)]
    parsed = [d for d in parse_files(files, settings.parsing) if d.ok]
    corpora = [Corpus(", ".join(Path(p).name for p in args.paths), parsed, list(args.paths))]
    short_dir = tempfile.TemporaryDirectory()
    if args.short_files:
        short = write_short_files(Path(short_dir.name), args.short_files)
        corpora.append(
            Corpus(
                f"{len(short)} short text files",
                [d for d in parse_files(short, settings.parsing) if d.ok],
                [short_dir.name],
            )
        )
    examples = SHARED_DATA / "example-docs"
    if args.example_docs and examples.is_dir():
        chosen = ingest_ray.sample_files(examples, args.example_docs)
        corpora.append(
            Corpus(
                f"example-docs, {len(chosen)} files",
                [d for d in parse_files(chosen, settings.parsing) if d.ok],
                [str(f) for f in chosen],
            )
        )
    if args.scifact_docs and (args.scifact / "corpus.jsonl").exists():
        corpora.append(
            Corpus(
                f"SciFact, first {args.scifact_docs} abstracts",
                scifact_subset(args.scifact, args.scifact_docs),
            )
        )

    results = {}
    for corpus in corpora:
        print(
            f"{corpus.name}: {len(corpus.documents)} documents, {args.repeats} repeats", flush=True
        )
        results[corpus.name] = measure(corpus, settings, embedder, peer, args.repeats)

    shape = EncoderShape.from_config(embedder.model_path)
    peak = cpu_peak()
    gemm = square_rate("fp32")
    rows: list[list[object]] = []
    panels: list[Panel] = []
    for corpus_name, systems in results.items():
        # Each ragline row against LlamaIndex doing the same work: from files, or from
        # the same parsed text.
        peer_files = next(
            (s for n, s in systems.items() if n.startswith("LlamaIndex") and "from files" in n),
            None,
        )
        peer_series = next(
            (s for n, s in systems.items() if n.startswith("LlamaIndex") and "from files" not in n),
            None,
        )
        plain_series = systems[PLAIN]
        bounds: dict[str, float] = {}
        for name, series in systems.items():
            counts = token_counts(embedder, series.texts) if series.texts else []
            bound = (
                passages_per_s_bound(peak.flops, mean_encoder_flops(shape, counts))
                if counts
                else 0.0
            )
            bounds[name] = bound
            vs_peer = vs_plain = "-"
            peer_for = peer_files if name == RAGLINE_FILES else peer_series
            if name.startswith("ragline") and peer_for is not None and series.docs_s:
                vs_peer = ratio_spread(speed_ratios(series.docs_s, peer_for.docs_s))
            if series is not plain_series and series.emb_s:
                vs_plain = ratio_spread(speed_ratios(series.emb_s, plain_series.emb_s))
            rows.append([
                corpus_name, name, series.docs or "-", series.chunks,
                spread(series.docs_s) if series.docs_s else "-",
                spread(series.chunks_s) if series.chunks_s else "-",
                spread(series.emb_s),
                f"{sum(counts) / len(counts):.0f}" if counts else "-",
                f"{bound:.0f}" if bound else "-",
                spread([r / bound for r in series.emb_s], 3) if bound else "-",
                vs_peer, vs_plain,
            ])  # fmt: skip
        panels.append(
            Panel(
                f"{corpus_name}: documents/s",
                "documents/s (median, min-max)",
                [
                    Bar(
                        short_label(name),
                        s.docs_s,
                        peer=not name.startswith("ragline"),
                    )
                    for name, s in systems.items()
                    if s.docs_s
                ],
            )
        )
        panels.append(
            Panel(
                f"{corpus_name}: embeddings/s",
                "passages embedded per second",
                [
                    Bar(
                        short_label(name),
                        s.emb_s,
                        peer=not name.startswith("ragline"),
                    )
                    for name, s in systems.items()
                    if s.emb_s
                ],
                reference=("FP32 FLOP bound", bounds[RAGLINE]),
            )
        )

    env = environment(
        ["unstructured", "sentence-transformers", "torch", "faiss-cpu", *llamaindex.PACKAGES]
    )
    notes = [
        "Environment: " + env,
        f"Model: {settings.embedding.model} on {pick_device(settings.embedding.device)}, batch "
        f"{settings.embedding.batch_size}; chunks of {settings.chunking.size} tokens, overlap "
        f"{settings.chunking.overlap}, in both systems. Median (min-max) of {args.repeats} "
        "repeats, systems run in rotating order in one process.",
        "Ratios are speed ratios from the same repeat, ragline ÷ peer (>1: ragline faster): "
        "documents/s from files vs LlamaIndex from the same files (its SimpleDirectoryReader "
        "with llama-index-readers-file; docs = files each system got text from), and from "
        "the same parsed text (chunk, embed, index, persist); embeddings/s vs the plain "
        "encode loop. ragline embeds with the runtime its quality gate chose "
        f"({embedder.runtime_name}); LlamaIndex and the plain loop with torch fp32, as "
        "they come. "
        "Embeddings/s counts encode time only.",
        f"FLOP bound: the CPU's peak FP32 rate / the model's FLOPs per passage at each "
        f"system's own token counts (bench/flops.py). {'; '.join(peak.assumptions())}. "
        f"torch's FP32 GEMM reaches {gemm / 1e9:.0f} GFLOP/s here ({gemm / peak.flops:.0%} "
        "of that peak).",
    ]
    if peer is None:
        notes.append(llamaindex.MISSING + ".")
    write_table(
        "ingest",
        "Ingestion throughput vs LlamaIndex",
        [
            "corpus", "system", "docs", "chunks", "docs/s", "chunks/s", "embeddings/s",
            "tokens/passage", "FLOP bound emb/s", "emb/s ÷ bound", "docs/s vs LlamaIndex",
            "emb/s vs plain",
        ],
        rows,
        notes,
    )  # fmt: skip
    write_plot("ingest", "Ingestion throughput (bars: median; whiskers: min-max)", panels, env)


def compare_executors(args: argparse.Namespace, settings: Settings, embedder: Embedder) -> None:
    sizes = [int(size) for size in args.ray_sizes.split(",")]
    corpora = {
        f"{args.ray_files.name}, {len(files)} files": files
        for files in (ingest_ray.sample_files(args.ray_files, size) for size in sizes)
    }
    print(f"executors: {', '.join(corpora)}, {args.repeats} repeats", flush=True)
    with ingest_ray.loopback_cluster() as address:
        results = ingest_ray.measure(corpora, settings, embedder, address, args.repeats)
    ingest_ray.write(results, args.repeats, environment(["unstructured", "torch", "ray"]))


if __name__ == "__main__":
    main()
