"""The file-based evaluation: the page generator, per-document metrics, and `ragline eval`
over a folder of files through the real parse → chunk path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragline.cli import app
from ragline.evaluation.beir import BeirDataset, BeirDoc, load_beir
from ragline.evaluation.files import load_file_eval
from ragline.evaluation.fileset import SITES, page_path, render_page, select, write_fileset
from ragline.evaluation.metrics import ndcg_at_k, passage_ndcg_at_k, recall_at_k


def _dataset(n: int = 12) -> BeirDataset:
    corpus = {
        str(i): BeirDoc(str(i), f"Title {i}", f"Sentence one of doc {i}. Sentence two. Three.")
        for i in range(n)
    }
    return BeirDataset(corpus, {"q1": "doc 3?", "q2": "doc 5?"}, {"q1": {"3": 1}, "q2": {"5": 1}})


def test_pages_are_deterministic_and_share_their_sites_boilerplate(tmp_path: Path) -> None:
    data = _dataset()
    assert write_fileset(data, tmp_path / "a") == write_fileset(data, tmp_path / "b") == 12
    for path in (tmp_path / "a" / "files").rglob("*"):
        if path.is_file():
            twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
            assert path.read_bytes() == twin.read_bytes()
    pages = [render_page(doc) for doc in data.corpus.values()]
    assert {Path(path).suffix for path, _ in pages} <= {".html", ".md", ".txt"}
    for site in SITES:
        texts = [text for path, text in pages if path.startswith(site.slug + "/")]
        for text in texts:  # every page of a site carries its footer and menu
            assert all(line.replace("&", "&amp;") in text or line in text for line in site.footer)
            assert site.menu[1] in text
    qrels = (tmp_path / "a" / "qrels" / "test.tsv").read_text().splitlines()
    assert qrels[1:] == [f"q1\t{page_path('3')}\t1", f"q2\t{page_path('5')}\t1"]
    clean = [json.loads(line) for line in (tmp_path / "a" / "documents.jsonl").open()]
    assert {row["_id"] for row in clean} == {page_path(str(i)) for i in range(12)}


def test_select_keeps_the_judged_documents() -> None:
    subset = select(_dataset(50), max_queries=1, max_docs=5)
    assert list(subset.queries) == ["q1"] and "3" in subset.corpus and len(subset.corpus) == 5


def test_a_document_counts_once_however_many_chunks_rank() -> None:
    relevant = {"a": 1, "b": 1}
    passages = ["a", "a", "a", "b"]
    assert recall_at_k(passages, relevant, 3) == 0.5  # three passages, one document
    assert passage_ndcg_at_k(passages, relevant) < ndcg_at_k(["a", "b"], relevant)
    assert passage_ndcg_at_k(["a", "b"], relevant) == pytest.approx(1.0)


def test_questions_jsonl_is_an_alternative_to_qrels(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    rows = [{"id": "x", "question": "Where?", "sources": ["site/a.html", "b.txt"]}]
    (tmp_path / "questions.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    data = load_file_eval(tmp_path)
    assert data.queries == {"x": "Where?"}
    assert data.qrels == {"x": {"site/a.html": 1, "b.txt": 1}}


@pytest.mark.slow
def test_ragline_eval_over_files(shared_data: Path, tmp_path: Path) -> None:
    """SciFact pages through parse → chunk → embed: chunks carry whole paragraphs, the
    boilerplate is left out, and retrieval finds the judged pages."""
    scifact = load_beir(shared_data / "beir" / "scifact", "test")
    write_fileset(select(scifact, 10, 40), tmp_path / "pages")
    env = {"RAGLINE_STORAGE__DATA_DIR": str(tmp_path / "var"), "RAGLINE_PARSING__WORKERS": "1"}
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["eval", str(tmp_path / "pages"), "--modes", "hybrid", "--out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    table = (out / "file_eval.md").read_text()
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")
        for line in table.splitlines()
        if line.startswith("| ")
    }
    assert float(rows["ragline hybrid"][2]) >= 0.7  # recall@5
    assert "plain MiniLM, clean documents" in rows and "plain MiniLM, parsed files" in rows
    all_types = rows["all"]
    assert int(all_types[1]) < 100 and float(all_types[2]) >= 64  # chunks, median tokens
    assert "0 failed" in table and "boilerplate elements left out" in table
