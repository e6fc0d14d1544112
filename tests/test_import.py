"""`ragline import`: chunks with their own embeddings from Parquet, bad rows reported."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from ragline.cli import app
from ragline.ingest.embed import Embedder
from ragline.retrieve.types import RetrievalRequest
from ragline.service.collections import CollectionService
from ragline.service.components import Components
from ragline.settings import Settings

TEXTS = {
    "faiss": "FAISS searches dense vectors by inner product on the CPU or a GPU.",
    "tantivy": "Tantivy is a full-text search engine library with BM25 ranking.",
    "redis": "Redis keeps key-value data in memory and can expire entries.",
    "vllm": "vLLM serves language models with paged attention and prefix caching.",
    "sqlite": "SQLite stores a whole database in one file with transactions.",
}


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _good_rows(embedder: Embedder) -> list[dict[str, object]]:
    vectors = embedder.encode(list(TEXTS.values())) * 3.0  # not normalised: import does it
    return [
        {
            "id": key,
            "text": text,
            "embedding": vector.tolist(),
            "source": "kb/tools.md",
            "title": key.upper(),
            "metadata": json.dumps({"tool": key}),
        }
        for (key, text), vector in zip(TEXTS.items(), vectors, strict=True)
    ]


def test_import_reports_bad_rows_and_the_rest_is_searchable(
    tmp_path: Path, settings: Settings, embedder: Embedder, monkeypatch: object
) -> None:
    good = _good_rows(embedder)
    dim = len(good[0]["embedding"])  # type: ignore[arg-type]
    bad = [
        {**good[0], "id": "short", "embedding": [0.1] * (dim - 1)},  # row 5
        {**good[0], "id": "blank", "text": "  "},  # row 6
        {**good[0], "id": "nan", "embedding": [float("nan")] * dim},  # row 7
        {**good[0], "id": "meta", "metadata": "{not json"},  # row 8
        {**good[0], "id": "", "text": "no id"},  # row 9
    ]
    path = _write(tmp_path / "rows.parquet", [*good, *bad])
    env = {"RAGLINE_STORAGE__DATA_DIR": str(settings.storage.data_dir)}
    result = CliRunner().invoke(app, ["import", str(path), "-c", "kb"], env=env)
    assert result.exit_code == 0, result.output
    assert "5 added" in result.output and "5 bad rows of 10" in result.output
    for row in ("5", "6", "7", "8", "9"):
        assert f"\n│ {row}" in result.output or f"│ {row} " in result.output

    components = Components(settings)
    service = CollectionService(components)
    collection = service.open("kb")
    try:
        assert collection.docstore.counts() == (5, 5)
        stored = collection.docstore.chunks_by_id(list(collection.lexical.chunk_ids()))
        by_key = {c.source: c for c in stored.values()}
        assert by_key["kb/tools.md#faiss"].metadata == {"tool": "faiss"}
        assert by_key["kb/tools.md#faiss"].headings == ("FAISS",)
        retriever = components.retriever(collection)
        for mode in ("dense", "bm25", "hybrid"):
            top = retriever.run(
                RetrievalRequest("full-text search engine library", top_k=1, mode=mode)
            ).passages[0]
            assert top.source == "kb/tools.md#tantivy", mode
    finally:
        collection.close()


def test_reimport_replaces_by_id_and_skips_unchanged(
    tmp_path: Path, settings: Settings, embedder: Embedder
) -> None:
    service = CollectionService(Components(settings))
    rows = _good_rows(embedder)
    first = service.import_parquet("kb", _write(tmp_path / "a.parquet", rows))
    assert (first.added, first.replaced, first.unchanged) == (5, 0, 0)

    changed = [*rows[:4], {**rows[4], "text": "SQLite is an embedded SQL database engine."}]
    second = service.import_parquet("kb", _write(tmp_path / "b.parquet", changed))
    assert (second.added, second.replaced, second.unchanged) == (0, 1, 4)
    with service.reading("kb") as collection:
        assert collection.docstore.counts() == (5, 5)
        texts = {c.text for c in collection.docstore.iter_chunks()}
        assert "SQLite is an embedded SQL database engine." in texts
        assert TEXTS["sqlite"] not in texts
        assert collection.lexical.chunk_ids() == {
            c.chunk_id for c in collection.docstore.iter_chunks()
        }
        assert collection.index.ntotal == 5


def test_import_refuses_another_model_and_an_unreadable_file(
    tmp_path: Path, settings: Settings, embedder: Embedder
) -> None:
    path = _write(tmp_path / "rows.parquet", _good_rows(embedder))
    env = {"RAGLINE_STORAGE__DATA_DIR": str(settings.storage.data_dir)}
    runner = CliRunner()
    other = runner.invoke(app, ["import", str(path), "-c", "kb", "--model", "e5-large"], env=env)
    assert other.exit_code == 1 and "queries are embedded with" in other.output
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    unreadable = runner.invoke(app, ["import", str(junk), "-c", "kb"], env=env)
    assert unreadable.exit_code == 1
    assert "not a readable Parquet file" in " ".join(unreadable.output.split())
    no_text = _write(tmp_path / "cols.parquet", [{"id": "x", "embedding": [0.1]}])
    missing = runner.invoke(app, ["import", str(no_text), "-c", "kb"], env=env)
    assert missing.exit_code == 1 and "missing column(s) text" in " ".join(missing.output.split())
