from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragline.cli import app
from ragline.ingest.collection import Collection
from ragline.ingest.embed import Embedder
from ragline.ingest.pipeline import IngestPipeline, Status
from ragline.settings import Settings, load_settings

SMALL_SET = [
    "fake-text.txt",
    "simple-table.md",
    "docx-tables.docx",
    "fake-email.eml",
    "fake-html.html",
    "pdf/layout-parser-paper-fast.pdf",
    "empty.txt",
    "CantinaBand3.wav",
]


def _copy(example_docs: Path, names: list[str], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(example_docs / name, dest / Path(name).name)
    return dest


def _consistency(store: Collection) -> tuple[int, int]:
    chunk_ids = [c.chunk_id for c in store.docstore.iter_chunks()]
    keys = [(c.source, c.position) for c in store.docstore.iter_chunks()]
    assert len(keys) == len(set(keys)), "no duplicated chunks"
    assert store.index.ntotal == len(chunk_ids)
    assert store.lexical.generation == store.generation
    assert store.lexical.chunk_ids() == set(chunk_ids)
    assert sum(d.n_chunks for d in store.docstore.documents()) == len(chunk_ids)
    return store.docstore.counts()


def test_ingest_reingest_update_delete(
    example_docs: Path, tmp_path: Path, settings: Settings, embedder: Embedder
) -> None:
    docs = _copy(example_docs, SMALL_SET, tmp_path / "docs")
    store = Collection.open(settings.storage.collections_dir, "t", settings.index, create=True)
    pipeline = IngestPipeline(settings, store, embedder=embedder)

    report = pipeline.run([docs])
    assert report.count(Status.INGESTED) == 6
    reasons = {Path(o.source).name: o.detail for o in report.failures}
    assert set(reasons) == {"empty.txt", "CantinaBand3.wav"}
    assert all(reasons.values())
    n_docs, n_chunks = _consistency(store)
    assert n_docs == 6 and n_chunks == report.chunks_embedded

    again = pipeline.run([docs])
    assert again.count(Status.UNCHANGED) == 6 and again.chunks_embedded == 0

    (docs / "fake-text.txt").write_text("A completely new text about tidal energy in Norway.\n")
    shutil.copy(docs / "simple-table.md", docs / "copy-of-table.md")
    updated = pipeline.run([docs])
    assert [Path(o.source).name for o in updated.outcomes if o.status == Status.UPDATED] == [
        "fake-text.txt"
    ]
    assert [Path(o.source).name for o in updated.outcomes if o.status == Status.DUPLICATE] == [
        "copy-of-table.md"
    ]
    texts = [c.text for c in store.docstore.iter_chunks() if c.source.endswith("fake-text.txt")]
    assert texts == ["A completely new text about tidal energy in Norway."]
    _consistency(store)

    assert store.delete_documents([str(docs / "docx-tables.docx")])
    assert store.docstore.counts()[0] == 5
    _consistency(store)

    # The nearest chunk to a query about the new text is that text.
    _, ids = store.index.search(embedder.encode(["tidal energy in Norway"]), 1)
    assert store.docstore.chunks_by_id([int(ids[0][0])])[int(ids[0][0])].source.endswith(
        "fake-text.txt"
    )


def test_cli_ingest_collections_delete(example_docs: Path, tmp_path: Path) -> None:
    docs = _copy(example_docs, ["fake-text.txt", "simple-table.md", "empty.txt"], tmp_path / "docs")
    env = {"RAGLINE_STORAGE__DATA_DIR": str(tmp_path / "var")}
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(docs), "-c", "cli"], env=env)
    assert result.exit_code == 0, result.output
    assert "ingested" in result.output and "empty file" in result.output
    assert "chunk size: median" in result.output and "under 32 tokens" in result.output

    listing = runner.invoke(app, ["collections"], env=env)
    assert "cli" in listing.output and "flat" in listing.output
    assert "median" in listing.output and "tokens" in listing.output
    # Which runtime made the vectors (the machine's choice, recorded by the collection).
    chosen = Embedder(load_settings().embedding).runtime_name
    assert f"vectors made with cli: {chosen}" in " ".join(listing.output.split())

    gone = runner.invoke(app, ["delete", str(docs / "simple-table.md"), "-c", "cli"], env=env)
    assert gone.exit_code == 0 and "deleted" in gone.output
    missing = runner.invoke(app, ["delete", str(docs / "nothing.txt"), "-c", "cli"], env=env)
    assert missing.exit_code == 1
    unknown = runner.invoke(app, ["delete", "x", "-c", "no-such"], env=env)
    assert unknown.exit_code == 1 and "does not exist" in unknown.output
    dropped = runner.invoke(app, ["delete", "--all", "-c", "cli"], env=env)
    assert dropped.exit_code == 0
    assert "cli" not in runner.invoke(app, ["collections"], env=env).output


KILL_SET = [
    "book-war-and-peace-1p.txt",
    "handbook-1p.docx",
    "example-10k-1p.html",
    "fake-html.html",
    "simple-table.md",
    "docx-tables.docx",
    "fake-email.eml",
    "norwich-city.txt",
    "category-level.docx",
    "README.md",
    "pdf/layout-parser-paper-fast.pdf",
    "pdf/reliance.pdf",
    "ideas-page.html",
    "fake-power-point.pptx",
]


def _ingest_cmd(docs: Path, collection: str, executor: list[str] | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ragline.cli",
        "ingest",
        str(docs),
        "-c",
        collection,
        "--workers",
        "1",
        *(executor or []),
    ]


def _counts(db: Path) -> tuple[int, int]:
    if not db.exists():
        return 0, 0
    try:
        conn = sqlite3.connect(db, timeout=5)
        docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        conn.close()
        return int(docs), int(chunks)
    except sqlite3.OperationalError:
        return 0, 0


def _run(command: list[str], env: dict[str, str]) -> None:
    # A session of its own, like any ingest a person starts: the test's Ray cluster runs
    # in pytest's process group, whose signals must not reach the driver.
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=900, start_new_session=True
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_kill_9_mid_ingest_then_rerun_matches_clean_run(
    example_docs: Path,
    tmp_path: Path,
    settings: Settings,
    executor: str,
    request: pytest.FixtureRequest,
) -> None:
    options = ["--executor", executor]
    if executor == "ray":  # the driver joins the test cluster, which outlives it
        options += ["--ray-address", request.getfixturevalue("ray_cluster").address]
    docs = _copy(example_docs, KILL_SET, tmp_path / "docs")
    env = {
        **os.environ,
        "RAGLINE_STORAGE__DATA_DIR": str(tmp_path / "var"),
        # Many small commits, so that the kill lands between some of them.
        "RAGLINE_PIPELINE__COMMIT_CHUNKS": "8",
    }
    _run(_ingest_cmd(docs, "clean", options), env)

    db = tmp_path / "var" / "collections" / "killed" / Collection.DOCSTORE
    process = subprocess.Popen(
        _ingest_cmd(docs, "killed", options),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while _counts(db)[0] < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial_docs, _ = _counts(db)
    assert 0 < partial_docs < len(KILL_SET), "the kill must land mid-ingest"

    _run(_ingest_cmd(docs, "killed", options), env)
    root = tmp_path / "var" / "collections"
    clean = Collection.open(root, "clean", settings.index)
    killed = Collection.open(root, "killed", settings.index)
    assert _consistency(killed) == _consistency(clean)
    per_doc = {(Path(d.source).name, d.n_chunks) for d in clean.docstore.documents()}
    assert {(Path(d.source).name, d.n_chunks) for d in killed.docstore.documents()} == per_doc
