"""Retrieval evaluation through files: documents parsed and chunked by the real ingest
path, scored per document against judged questions.

Folder layout (``ragline.evaluation.fileset`` writes one from a BEIR dataset):

- ``files/``: the documents, any format ``ragline ingest`` reads;
- judgements, either ``queries.jsonl`` + ``qrels/<split>.tsv`` (BEIR, with the corpus id
  being the file's path under ``files/``) or ``questions.jsonl``
  (``{"id": ..., "question": ..., "sources": [paths under files/]}``);
- optionally ``documents.jsonl`` (BEIR corpus rows keyed by path: the clean text of each
  file) for baselines over clean, unsplit documents.

Each question's top passages are mapped to their files, and a file counts once however
many of its chunks rank (``metrics.passage_ndcg_at_k``): recall@5 is the share of the
judged files among the files of the first five passages, what a reader of those five
passages gets. Baselines put each whole document in one vector (or one BM25 entry); the
embedding model reads its first ``max_seq_length`` tokens (256 for all-MiniLM-L6-v2).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragline.evaluation.beir import BeirDoc, load_corpus, load_qrels, load_queries
from ragline.evaluation.metrics import mrr_at_k, passage_ndcg_at_k, percentile, recall_at_k
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.parallel import parse_files
from ragline.ingest.pipeline import IngestPipeline, Status, discover
from ragline.ingest.types import ChunkSizeStats, ParsedDocument
from ragline.retrieve.bm25 import BM25Index
from ragline.retrieve.dense import QueryEncoder
from ragline.retrieve.retriever import Retriever
from ragline.retrieve.types import Mode, RetrievalRequest
from ragline.settings import Settings

TINY_CHUNK_TOKENS = 16
DEPTH = 10  # passages scored per question: nDCG@10 and recall@5/@10 come from them


@dataclass(slots=True)
class FileEvalSet:
    files: Path  # the documents' folder
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # question id -> file path under ``files`` -> gain
    clean: dict[str, BeirDoc] = field(default_factory=dict)  # path -> clean text


def is_file_eval(folder: Path) -> bool:
    return (folder / "files").is_dir()


def load_file_eval(folder: Path, split: str = "test") -> FileEvalSet:
    questions = folder / "questions.jsonl"
    if questions.exists():
        queries: dict[str, str] = {}
        qrels: dict[str, dict[str, int]] = {}
        for number, line in enumerate(questions.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                row = json.loads(line)
                question_id = str(row.get("id", number))
                queries[question_id] = row["question"]
                qrels[question_id] = {str(source): 1 for source in row["sources"]}
    else:
        qrels = load_qrels(folder / "qrels" / f"{split}.tsv")
        queries = load_queries(folder / "queries.jsonl", qrels)
    clean_path = folder / "documents.jsonl"
    clean = load_corpus(clean_path) if clean_path.exists() else {}
    return FileEvalSet(folder / "files", queries, qrels, clean)


@dataclass(slots=True)
class FileEvalRow:
    label: str
    unit: str  # what is ranked: "chunks" or "whole documents"
    recall5: float
    recall10: float
    ndcg10: float
    mrr10: float
    p50_ms: float
    queries: int


@dataclass(slots=True)
class IngestSummary:
    """What the parse → chunk path made of the files."""

    documents: int
    failed: int
    chunks: ChunkSizeStats
    share_tiny: float  # chunks under TINY_CHUNK_TOKENS
    by_type: dict[str, ChunkSizeStats]
    boilerplate_dropped: int
    merged: int
    seconds: float


def _score(
    label: str,
    unit: str,
    rankings: dict[str, list[str]],
    qrels: dict[str, dict[str, int]],
    latency_ms: list[float],
) -> FileEvalRow:
    recall5, recall10, ndcg, mrr = [], [], [], []
    for question_id, documents in rankings.items():
        relevant = qrels[question_id]
        recall5.append(recall_at_k(documents, relevant, 5))
        recall10.append(recall_at_k(documents, relevant, 10))
        ndcg.append(passage_ndcg_at_k(documents, relevant, 10))
        mrr.append(mrr_at_k(documents, relevant, 10))
    return FileEvalRow(
        label,
        unit,
        statistics.fmean(recall5),
        statistics.fmean(recall10),
        statistics.fmean(ndcg),
        statistics.fmean(mrr),
        percentile(latency_ms, 50),
        len(rankings),
    )


class FileEvaluator:
    def __init__(
        self,
        settings: Settings,
        data: FileEvalSet,
        name: str,
        embedder: Embedder | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.data = data
        self.name = name
        self.embedder = embedder or Embedder(settings.embedding)
        self.log = log
        self.files_root = data.files.resolve()
        self.collection: Collection | None = None
        self.parsed: list[ParsedDocument] = []  # what parsing made of each file
        self.parsed_text: dict[str, str] = {}  # path -> all the text parsing found

    def relative(self, source: str) -> str:
        return Path(source).relative_to(self.files_root).as_posix()

    def ingest(self) -> IngestSummary:
        """A fresh collection from the files: parse (worker processes), chunk, embed."""
        chunking = self.settings.chunking
        name = f"files-{self.name}-c{chunking.size}-o{chunking.overlap}"
        root = self.settings.storage.collections_dir
        if name in Collection.names(root):
            Collection.drop(root, name)
        collection = Collection.open(root, name, self.settings.index, create=True)
        paths = discover([self.files_root])
        self.log(f"parsing {len(paths)} files into {name} ...")
        started = time.perf_counter()
        parsed = self.parsed = list(parse_files(paths, self.settings.parsing))
        self.parsed_text = {
            self.relative(d.source): "\n\n".join(e.text for e in d.elements) for d in parsed if d.ok
        }
        pipeline = IngestPipeline(self.settings, collection, embedder=self.embedder)
        report = pipeline.ingest_documents(parsed)
        seconds = time.perf_counter() - started
        self.collection = collection
        types = {d.source: d.file_type for d in collection.docstore.documents()}
        counts: dict[str, list[int]] = {}
        every: list[int] = []
        for chunk in collection.docstore.iter_chunks():
            counts.setdefault(types[chunk.source], []).append(chunk.token_count)
            every.append(chunk.token_count)
        summary = IngestSummary(
            documents=len(types),
            failed=report.count(Status.FAILED),
            chunks=ChunkSizeStats.of(every),
            share_tiny=sum(n < TINY_CHUNK_TOKENS for n in every) / max(1, len(every)),
            by_type={kind: ChunkSizeStats.of(values) for kind, values in sorted(counts.items())},
            boilerplate_dropped=report.boilerplate_dropped,
            merged=report.small_merged,
            seconds=seconds,
        )
        self.log(
            f"  {summary.documents} documents, {summary.chunks.chunks} chunks "
            f"(median {summary.chunks.median_tokens} tokens) in {seconds:.0f}s"
        )
        return summary

    def retrieval(
        self,
        mode: Mode,
        label: str | None = None,
        settings: Settings | None = None,
        data: FileEvalSet | None = None,
    ) -> FileEvalRow:
        """Top passages of the collection for each question (``settings`` may vary
        retrieval options over the same collection, ``data`` the questions)."""
        data = data or self.data
        assert self.collection is not None, "ingest() first"
        retriever = Retriever(
            settings or self.settings,
            self.collection,
            self.embedder,
            query_encoder=QueryEncoder(self.embedder, cache_size=0),
        )
        self.collection.repair()  # a lexical index for a collection made before one
        rankings: dict[str, list[str]] = {}
        latency: list[float] = []
        for question_id, question in data.queries.items():
            request = RetrievalRequest(
                question, top_k=DEPTH, mode=mode, compress=False, use_cache=False
            )
            started = time.perf_counter()
            result = retriever.run(request)
            latency.append((time.perf_counter() - started) * 1e3)
            rankings[question_id] = [self.relative(p.source) for p in result.passages]
        return _score(label or f"ragline {mode}", "chunks", rankings, data.qrels, latency)

    def whole_document_dense(self, label: str, texts: dict[str, str]) -> FileEvalRow:
        """Plain MiniLM: one vector per whole document, exact inner-product search."""
        paths = list(texts)
        vectors = self.embedder.encode([texts[p] for p in paths])
        rankings: dict[str, list[str]] = {}
        latency: list[float] = []
        for question_id, question in self.data.queries.items():
            started = time.perf_counter()
            query = self.embedder.encode([question])[0]
            top = np.argsort(-(vectors @ query), kind="stable")[:DEPTH]
            latency.append((time.perf_counter() - started) * 1e3)
            rankings[question_id] = [paths[i] for i in top]
        return _score(label, "whole documents", rankings, self.data.qrels, latency)

    def whole_document_bm25(self, label: str, texts: dict[str, str]) -> FileEvalRow:
        paths = list(texts)
        index = BM25Index(list(range(len(paths))), [texts[p] for p in paths])
        rankings: dict[str, list[str]] = {}
        latency: list[float] = []
        for question_id, question in self.data.queries.items():
            started = time.perf_counter()
            hits = index.search(question, DEPTH, None)
            latency.append((time.perf_counter() - started) * 1e3)
            rankings[question_id] = [paths[i] for i, _ in hits]
        return _score(label, "whole documents", rankings, self.data.qrels, latency)

    def baselines(self) -> list[FileEvalRow]:
        """Whole-document rows: over the clean text when the set has it, and over all
        the text parsing found in each file (boilerplate included)."""
        rows = []
        if self.data.clean:
            clean = {p: f"{d.title} {d.text}".strip() for p, d in self.data.clean.items()}
            rows.append(self.whole_document_dense("plain MiniLM, clean documents", clean))
            rows.append(self.whole_document_bm25("plain BM25, clean documents", clean))
        if self.parsed_text:
            rows.append(self.whole_document_dense("plain MiniLM, parsed files", self.parsed_text))
        return rows

    def close(self) -> None:
        if self.collection is not None:
            self.collection.close()
