from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from ragline.evaluation.beir import load_beir
from ragline.evaluation.evaluate import EvalConfig, Evaluator, parse_sweep
from ragline.evaluation.metrics import mrr_at_k, ndcg_at_k, percentile, recall_at_k
from ragline.evaluation.report import pareto_front, write_results
from ragline.ingest import onnx_export
from ragline.ingest.embed_cache import CachingEmbedder
from ragline.settings import EmbeddingSettings, Settings


def test_metrics_match_hand_computed_values() -> None:
    relevant = {"a": 1, "b": 1}
    assert ndcg_at_k(["a", "b", "c"], relevant) == pytest.approx(1.0)
    assert ndcg_at_k(["c", "a"], relevant) == pytest.approx((1 / 1.5849625) / (1 + 1 / 1.5849625))
    assert ndcg_at_k(["c", "d"], relevant) == 0.0
    assert recall_at_k(["a", "c"], relevant, 100) == 0.5
    assert mrr_at_k(["c", "d", "b"], relevant) == pytest.approx(1 / 3)
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 95) == 4


def test_sweep_parsing() -> None:
    assert parse_sweep(["chunk_size=128,256", "overlap=0,32;rerank_depth=0,20"]) == {
        "chunk_size": [128, 256],
        "overlap": [0, 32],
        "rerank_depth": [0, 20],
    }
    with pytest.raises(ValueError, match="bad sweep term"):
        parse_sweep(["temperature=1"])


class OverlapReranker:
    def score(self, query: str, texts: list[str]) -> np.ndarray:
        words = set(query.lower().split())
        return np.array([len(words & set(t.lower().split())) for t in texts], np.float32)


@pytest.mark.slow
def test_evaluator_on_a_scifact_slice(
    shared_data: Path, settings: Settings, tmp_path: Path
) -> None:
    data = load_beir(shared_data / "beir" / "scifact", "test")
    data.queries = dict(itertools.islice(data.queries.items(), 20))
    wanted = {doc for q in data.queries for doc in data.qrels[q]}
    extra = [d for d in data.corpus if d not in wanted][:150]
    data.corpus = {d: data.corpus[d] for d in [*wanted, *extra]}
    evaluator = Evaluator(settings, data, "slice", OverlapReranker, log=lambda _: None)
    grid = parse_sweep(["chunk_size=128,256", "overlap=16"])
    rows = evaluator.run(evaluator.configs(grid, ["dense", "bm25", "hybrid"]))
    assert len(rows) == 6
    for row in rows:
        assert 0.3 < row.ndcg10 <= 1.0 and 0 < row.recall100 <= 1.0
        assert 0 < row.p50_ms <= row.p95_ms
        assert row.rerank_p50_ms == 0
    # The rerank stage is timed on its own (a word-overlap stand-in for the cross-encoder).
    (reranked,) = evaluator.run([EvalConfig(256, 16, "hybrid", 10)])
    assert 0 < reranked.rerank_p50_ms < reranked.p50_ms
    # The second chunking reuses embeddings of chunks that came out identical.
    assert evaluator.embedder.hits > 0
    report = write_results([*rows, reranked], tmp_path / "out", "slice", ["note"])
    table = (tmp_path / "out" / "eval.csv").read_text().splitlines()
    assert len(table) == 8 and table[0].endswith(",rerank_p50_ms")
    assert table[1].endswith(",-") and not table[-1].endswith(",-")
    assert (tmp_path / "out" / "eval.png").stat().st_size > 10_000
    assert "frontier" in report.read_text()
    assert pareto_front(rows)
    # Each embedding runtime and export gets collections of its own: queries of one are
    # never scored against vectors another stored.
    runtime = evaluator.embedder.vectors_id
    assert runtime.startswith(evaluator.embedder.runtime_name + "-")
    names = {p.name for p in settings.storage.collections_dir.iterdir()}
    assert {f"slice-c128-o16-{runtime}", f"slice-c256-o16-{runtime}"} <= {
        n.removeprefix("beir-") for n in names
    }


def test_cached_vectors_are_keyed_by_runtime_and_export(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache, exports = tmp_path / "vectors.sqlite", tmp_path / "exports"
    texts = ["alpha beta gamma", "delta epsilon"]
    settings = EmbeddingSettings(backend="torch", precision="fp32")
    first = CachingEmbedder(settings, cache, exports)
    vectors = first.encode(texts)
    assert (first.hits, first.misses) == (0, 2)
    again = CachingEmbedder(settings, cache, exports)
    assert np.array_equal(again.encode(texts), vectors)
    assert (again.hits, again.misses) == (2, 0)
    # Another export recipe (a new int8 recipe, a library upgrade) embeds again: its
    # vectors are close to the stored ones, not equal.
    monkeypatch.setattr(onnx_export, "RECIPE", onnx_export.RECIPE + "|next")
    newer = CachingEmbedder(settings, cache, exports)
    newer.encode(texts)
    assert (newer.hits, newer.misses) == (0, 2)
    assert newer.vectors_id.startswith("torch-fp32-") and newer.vectors_id != again.vectors_id
