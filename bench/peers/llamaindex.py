"""LlamaIndex as a peer: ingestion (split → embed → index → persist) and retrieval.

Set up to do the same work as ragline: the same sentence-transformers model folder through
``HuggingFaceEmbedding`` (same batch size, normalised vectors), ``SentenceSplitter`` with
the same chunk size and overlap counted in the embedding model's own tokens, an exact
inner-product FAISS index (``FaissVectorStore`` over ``IndexFlatIP``, what ragline uses
below 50k vectors), and no LLM anywhere (``Settings.llm = None``; retrievers only).

Only importable in the benchmark's environment (scripts/bench-env.sh → .venv-bench).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = (
    "llama-index-core",
    "llama-index-embeddings-huggingface",
    "llama-index-vector-stores-faiss",
    "llama-index-readers-file",
)


def version() -> str | None:
    """llama-index-core's version where the peer can run here, else None."""
    try:
        import llama_index.core
        import llama_index.embeddings.huggingface
        import llama_index.vector_stores.faiss  # noqa: F401
    except ImportError:
        return None
    return metadata.version("llama-index-core")


MISSING = (
    "LlamaIndex is not installed in this environment: run `bash scripts/bench-env.sh`, "
    "then `.venv-bench/bin/python -m bench`"
)


@dataclass(slots=True)
class IngestRun:
    seconds: float  # whole pipeline: split, embed, build the index, persist it
    embed_seconds: float  # the embedding transformation alone
    nodes: int
    texts: list[str] = field(repr=False)  # what was embedded (for token counts)
    files: int = 0  # documents given, or files that gave text (from files)


class LlamaIndexPeer:
    def __init__(self, model_path: str, chunk_size: int, overlap: int, batch_size: int) -> None:
        from llama_index.core import Settings
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenize: Callable[[str], list[int]] = lambda text: tokenizer.encode(
            text, add_special_tokens=False, verbose=False
        )
        self.embed_model = HuggingFaceEmbedding(
            model_name=model_path, device="cpu", embed_batch_size=batch_size, normalize=True
        )
        Settings.llm = None  # no LLM: MockLLM, never called by a retriever
        Settings.embed_model = self.embed_model
        self.chunk_size = chunk_size
        self.overlap = overlap
        self.dimension = len(self.embed_model.get_text_embedding("warm up"))

    def _splitter(self) -> Any:
        from llama_index.core.node_parser import SentenceSplitter

        return SentenceSplitter(
            chunk_size=self.chunk_size, chunk_overlap=self.overlap, tokenizer=self.tokenize
        )

    def _faiss_context(self) -> Any:
        import faiss
        from llama_index.core import StorageContext
        from llama_index.vector_stores.faiss import FaissVectorStore

        store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(self.dimension))
        return StorageContext.from_defaults(vector_store=store)

    def ingest(self, documents: Sequence[tuple[str, str]], persist_dir: Path) -> IngestRun:
        """(source, text) documents → nodes → embeddings → FAISS-backed VectorStoreIndex,
        persisted to ``persist_dir`` (ragline writes its collection to disk too)."""
        from llama_index.core import Document

        started = time.perf_counter()
        docs = [Document(text=text, id_=source) for source, text in documents]
        return self._index(docs, persist_dir, started)

    def ingest_files(self, files: Sequence[Path], persist_dir: Path) -> IngestRun:
        """From the files themselves: ``SimpleDirectoryReader`` with the readers of
        llama-index-readers-file (what ``pip install llama-index`` brings), then as
        ``ingest``. A file it cannot read is skipped: its ``raise_on_error=False`` does not
        cover a reader's missing dependency (PPTX and image readers need hub models here),
        so each file is read on its own and a failure leaves that file out."""
        from llama_index.core import SimpleDirectoryReader

        started = time.perf_counter()
        docs: list[Any] = []
        for path in files:
            try:
                docs += SimpleDirectoryReader(input_files=[str(path)]).load_data()
            except Exception:  # the peer failing on one file, not the run
                continue
        run = self._index(docs, persist_dir, started)
        run.files = len({d.metadata.get("file_path") for d in docs if d.text.strip()})
        return run

    def _index(self, docs: list[Any], persist_dir: Path, started: float) -> IngestRun:
        from llama_index.core import VectorStoreIndex
        from llama_index.core.ingestion import IngestionPipeline
        from llama_index.core.schema import MetadataMode

        clock = _clock_type()
        # Distinct names: the pipeline caches each step by a hash of the step and its input.
        before, after = clock(name="before embedding"), clock(name="after embedding")
        pipeline = IngestionPipeline(
            transformations=[self._splitter(), before, self.embed_model, after]
        )
        nodes = pipeline.run(documents=docs, show_progress=False)
        index = VectorStoreIndex(
            nodes, storage_context=self._faiss_context(), embed_model=self.embed_model
        )
        index.storage_context.persist(persist_dir=str(persist_dir))
        seconds = time.perf_counter() - started
        return IngestRun(
            seconds,
            after.marks[0] - before.marks[0],
            len(nodes),
            [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes],
            files=len(docs),
        )

    def retriever(
        self, texts: Sequence[str], vectors: np.ndarray, top_k: int, faiss_store: bool = True
    ) -> Callable[[str], object]:
        """A retriever over existing chunks and their vectors (no re-embedding): query →
        embed with the same model → top_k nodes. ``faiss_store=False`` uses LlamaIndex's
        default in-memory vector store instead."""
        from llama_index.core import VectorStoreIndex
        from llama_index.core.schema import TextNode

        nodes = [
            TextNode(text=text, id_=str(i), embedding=vector.tolist())
            for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        ]
        context = self._faiss_context() if faiss_store else None
        index = VectorStoreIndex(nodes, storage_context=context, embed_model=self.embed_model)
        retriever = index.as_retriever(similarity_top_k=top_k)
        return lambda query: retriever.retrieve(query)


def _clock_type() -> Any:
    """A pass-through transformation that records when the nodes reach it."""
    from llama_index.core.schema import TransformComponent

    class Clock(TransformComponent):
        name: str
        marks: list[float] = []  # noqa: RUF012  (a pydantic field: copied per instance)

        def __call__(self, nodes: Any, **kwargs: Any) -> Any:
            self.marks.append(time.perf_counter())
            return nodes

    return Clock
