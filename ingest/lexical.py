"""The lexical (BM25) index: tantivy segments on disk, beside the docstore.

Updated in the same commit group as the docstore and FAISS by the collection's one
writer (deletes by chunk id, adds, one tantivy commit, then the generation it reflects
is recorded in ``lexical.json``). Readers in any process open the same segments
memory-mapped and see a commit after a cheap reload: nothing is rebuilt to search.
Analysis as ragline's BM25 always did: English stopwords and Snowball stemming.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import tantivy

ANALYZER = "ragline_en"
_WRITER_HEAP = 64 * 2**20


def _analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field("chunk_id", stored=True, indexed=True, fast=True)
    builder.add_text_field("text", stored=False, tokenizer_name=ANALYZER)
    return builder.build()


class LexicalIndex:
    MANIFEST = "lexical.json"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.schema = _schema()
        self.analyzer = _analyzer()
        self._index: tantivy.Index | None = None
        self._writer: tantivy.IndexWriter | None = None
        self._loaded_generation = -1  # the manifest generation the searcher last saw
        self._lock = threading.Lock()

    # -- state --------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The docstore generation the committed segments reflect (-1: none)."""
        try:
            return int(json.loads((self.path / self.MANIFEST).read_text())["generation"])
        except (FileNotFoundError, ValueError, KeyError):
            return -1

    def _open(self) -> tantivy.Index:
        if self._index is None:
            self.path.mkdir(parents=True, exist_ok=True)
            index = tantivy.Index(self.schema, path=str(self.path))
            index.register_tokenizer(ANALYZER, self.analyzer)
            self._index = index
        return self._index

    # -- writing (the collection's writer only, holding its writer lock) ---------------------

    def apply(
        self, removed: Sequence[int], added: Iterable[tuple[int, str]], generation: int
    ) -> None:
        """Delete ``removed`` (and any earlier copy of an added id: replaying is
        idempotent), add the new chunks, commit, then record ``generation``."""
        index = self._open()
        if self._writer is None:
            self._writer = index.writer(heap_size=_WRITER_HEAP, num_threads=1)
        writer = self._writer
        added = list(added)
        for chunk_id in {*removed, *(cid for cid, _ in added)}:
            writer.delete_documents_by_term("chunk_id", int(chunk_id))
        for chunk_id, text in added:
            writer.add_document(tantivy.Document(chunk_id=int(chunk_id), text=text))
        writer.commit()
        self._write_manifest(generation)

    def rebuild(self, chunks: Iterable[tuple[int, str]], generation: int) -> None:
        """Every chunk again, in one commit (a crash left the log too short to replay);
        readers see the old segments until it lands."""
        index = self._open()
        if self._writer is None:
            self._writer = index.writer(heap_size=_WRITER_HEAP, num_threads=1)
        self._writer.delete_all_documents()
        self.apply([], chunks, generation)

    def _write_manifest(self, generation: int) -> None:
        tmp = self.path / (self.MANIFEST + ".tmp")
        tmp.write_text(json.dumps({"generation": generation}))
        os.replace(tmp, self.path / self.MANIFEST)

    def release_writer(self) -> None:
        """Let go of the tantivy writer and its lock (readers that repaired the index)."""
        with self._lock:
            if self._writer is not None:
                self._writer.wait_merging_threads()
                self._writer = None

    def close(self) -> None:
        """Release the tantivy writer (its lock file) and the searcher."""
        self.release_writer()
        with self._lock:
            self._index = None
            self._loaded_generation = -1

    # -- searching ----------------------------------------------------------------------

    def search(
        self, query: str, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        """Top-k (chunk id, BM25 score), optionally only among ``allowed`` ids. Query words
        are analysed like the indexed text and OR-ed: no query syntax to trip over."""
        terms = list(dict.fromkeys(self.analyzer.analyze(query)))
        if k <= 0 or not terms or (allowed is not None and not allowed):
            return []
        generation = self.generation
        if generation < 0:
            return []
        with self._lock:
            index = self._open()
            if generation != self._loaded_generation:
                index.reload()  # pick up segments committed since (cheap: reads meta only)
                self._loaded_generation = generation
            searcher = index.searcher()
        text_query = tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, tantivy.Query.term_query(self.schema, "text", term))
                for term in terms
            ]
        )
        if allowed is not None:
            # Scored 0: the filter decides membership, BM25 alone the order.
            restrict = tantivy.Query.const_score_query(
                tantivy.Query.term_set_query(self.schema, "chunk_id", sorted(allowed)), 0.0
            )
            text_query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, text_query), (tantivy.Occur.Must, restrict)]
            )
        hits = searcher.search(text_query, k).hits
        ids = searcher.fast_field_values("chunk_id", [address for _, address in hits])
        return [
            (int(cid), float(score))
            for (score, _), cid in zip(hits, ids, strict=True)
            if cid is not None
        ]

    def chunk_ids(self) -> set[int]:
        """Every indexed chunk id (consistency checks; reads the whole id column)."""
        if self.generation < 0:
            return set()
        with self._lock:
            index = self._open()
            index.reload()
            self._loaded_generation = -1
            searcher = index.searcher()
        hits = searcher.search(tantivy.Query.all_query(), max(1, searcher.num_docs)).hits
        ids = searcher.fast_field_values("chunk_id", [address for _, address in hits])
        return {int(cid) for cid in ids if cid is not None}
