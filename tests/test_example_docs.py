"""Ingest every file of the shared example-docs corpus: content out, or a clear reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.fake_serve import hash_embed
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline, IngestReport, Status
from ragline.service.components import Components
from ragline.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ingested(
    example_docs: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[IngestReport, Collection, Path]:
    root = tmp_path_factory.mktemp("example")
    corpus = root / "example-docs"
    shutil.copytree(example_docs, corpus)
    settings = Settings(storage={"data_dir": root / "var"}, parsing={"file_timeout_s": 900})
    store = Collection.open(
        settings.storage.collections_dir, "examples", settings.index, create=True
    )
    # What this module tests is parsing, chunking and the index over every file: an
    # embedder of its own with the model's pass swapped for hashed words (the real pass
    # over all of them took 13 minutes on a 2-core AVX2 CPU; the model's path over their
    # oddest chunks: test_the_model_embeds_the_oddest_chunks).
    components = Components(settings)
    hash_embed(components)
    report = IngestPipeline(settings, store, embedder=components.embedder).run([corpus])
    return report, store, corpus


def test_the_model_embeds_the_oddest_chunks(
    ingested: tuple[IngestReport, Collection, Path], embedder: Embedder
) -> None:
    _, store, _ = ingested
    chunks = list(store.docstore.iter_chunks())

    def non_ascii(text: str) -> float:
        return sum(ord(ch) > 127 for ch in text) / max(1, len(text))

    longest = sorted(chunks, key=lambda c: -c.token_count)[:16]
    foreign = sorted(chunks, key=lambda c: -non_ascii(c.text))[:48]
    assert non_ascii(foreign[0].text) > 0.5, "the corpus has documents in other scripts"
    texts = [c.text for c in longest + foreign]
    vectors = embedder.encode(texts)
    assert vectors.shape == (len(texts), embedder.dimension)
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_every_file_yields_chunks_or_a_reason(
    ingested: tuple[IngestReport, Collection, Path],
) -> None:
    report, store, corpus = ingested
    all_files = {p.resolve() for p in corpus.rglob("*") if p.is_file()}
    assert {Path(o.source) for o in report.outcomes} == all_files
    for outcome in report.outcomes:
        if outcome.status == Status.FAILED:
            assert outcome.detail, f"{outcome.source} failed without a reason"
        elif outcome.status in (Status.INGESTED, Status.UPDATED):
            assert outcome.chunks > 0
    ingested_count = report.count(Status.INGESTED)
    assert ingested_count >= 0.85 * len(all_files), [o.detail for o in report.failures]
    docs, chunks = store.docstore.counts()
    assert docs == ingested_count and store.index.ntotal == chunks


def test_pdfs_with_text_yield_text(ingested: tuple[IngestReport, Collection, Path]) -> None:
    report, store, _ = ingested
    pdfs = [o for o in report.outcomes if o.source.endswith(".pdf")]
    failed = {Path(o.source).name: o.detail for o in pdfs if o.status == Status.FAILED}
    # Only the deliberately broken or password-protected PDFs may fail.
    assert set(failed) <= {
        "password.pdf",
        "failure-after-repair.pdf",
        "invalid-pdf-structure-pdfminer-one-page.pdf",
    }, failed
    by_source: dict[str, int] = {}
    for chunk in store.docstore.iter_chunks():
        if chunk.source.endswith(".pdf"):
            by_source[chunk.source] = by_source.get(chunk.source, 0) + len(chunk.text)
    assert len(by_source) >= len(pdfs) - len(failed)
    assert all(chars > 20 for chars in by_source.values())


def test_tables_keep_structure(ingested: tuple[IngestReport, Collection, Path]) -> None:
    _, store, _ = ingested
    tables: dict[str, int] = {}
    for chunk in store.docstore.iter_chunks():
        if chunk.category == "table":
            assert chunk.table_html and chunk.table_html.startswith("<table>")
            lines = chunk.text.splitlines()[2 if chunk.headings else 0 :]
            partial = [ln for ln in lines if not (ln.startswith("| ") and ln.endswith(" |"))]
            # Rows are whole; only a single row longer than the budget is cut into windows.
            assert len(partial) <= 1, chunk.text
            suffix = Path(chunk.source).suffix
            tables[suffix] = tables.get(suffix, 0) + 1
    assert {".docx", ".xlsx", ".html"} <= set(tables), tables


def test_metadata_is_kept(ingested: tuple[IngestReport, Collection, Path]) -> None:
    _, store, _ = ingested
    chunks = list(store.docstore.iter_chunks())
    assert any(c.page and c.page > 1 for c in chunks if c.source.endswith(".pdf"))
    assert any(c.sheet for c in chunks if c.source.endswith(".xlsx"))
    assert any(c.headings for c in chunks if c.source.endswith(".html"))
    assert all(len(c.content_hash) == 64 for c in chunks)
