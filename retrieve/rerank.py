"""Cross-encoder reranking: scores (query, passage) pairs jointly, higher = more relevant."""

from __future__ import annotations

import json
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragline.ingest.embed import pick_device, token_batches
from ragline.ingest.forwards import EncoderModel, RuntimeRequest, settle_runtime
from ragline.ingest.runtime import (
    REFERENCE,
    Calibration,
    Forward,
    RuntimeChoice,
    calibration_texts,
    default_export_dir,
)
from ragline.ingest.tokenized import Tokenized
from ragline.settings import RerankSettings

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

BUILTIN_RERANKER = "builtin:minilm-scifact"
BUILTIN_RERANKER_DIR = "reranker-minilm-scifact"
METADATA_FILE = "ragline_reranker.json"  # written by ``ragline reranker train``
GATE_QUERIES = 8
GATE_PASSAGES = 10  # per gate query: a depth-10 ranking each
TIMED_PAIRS = 20  # one depth-20 rerank
# Left at bf16 by int8: the feed-forward down-projections and the scoring head. Fully
# int8, a 4-layer SciFact reranker lost 0.009 nDCG@10 to fp32 (rank correlation on its
# hybrid top 20: 0.989); with these at bf16, 0.994, at ~15% of int8's speed-up.
RERANK_INT8_SKIP = (r".*layer\.\d+\.output\.dense.*", ".*pooler.*", ".*classifier.*")


def resolve_reranker_path(name: str, models_dir: Path) -> str:
    """Map ``builtin:minilm-scifact`` to ``models_dir/reranker-minilm-scifact`` (which must
    exist); any other value is a Hugging Face cross-encoder name or a local path."""
    if name == BUILTIN_RERANKER:
        path = models_dir / BUILTIN_RERANKER_DIR
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"reranker model {name!r} not found at {path}: "
                "run `ragline reranker train` to build it, or set rerank.model to a "
                "Hugging Face cross-encoder name or a local path"
            )
        return str(path)
    if name.startswith("builtin:"):
        raise ValueError(f"unknown builtin reranker model {name!r}")
    return name


class CrossEncoderReranker:
    """Loads the model on first use; ``score`` is the only hot path. The forward pass
    runs where ``ingest.runtime`` chose (torch or OpenVINO, fp32/bf16/int8), gated on the
    rank correlation of its scores with fp32 ones."""

    def __init__(
        self, settings: RerankSettings, models_dir: Path, export_dir: Path | None = None
    ) -> None:
        self.settings = settings
        self.model_path = resolve_reranker_path(settings.model, models_dir)
        self.export_dir = export_dir or default_export_dir()
        self._lock = threading.Lock()

    @cached_property
    def max_length(self) -> int:
        """``settings.max_length``, capped at the length a ``ragline reranker train`` model
        was trained at (its ``ragline_reranker.json``): scoring longer inputs than it ever
        saw makes its ranking much worse (a reranker trained at 64 tokens fell from 0.63 to 0.44
        SciFact nDCG@10 when scored at 256)."""
        record = Path(self.model_path) / METADATA_FILE
        if record.is_file():
            trained = json.loads(record.read_text()).get("max_length")
            if isinstance(trained, int):
                return min(self.settings.max_length, trained)
        return self.settings.max_length

    @cached_property
    def model(self) -> CrossEncoder:
        import torch
        from sentence_transformers import CrossEncoder

        # Raw logits, not sigmoid: sigmoid saturates to ties at the top of the ranking.
        return CrossEncoder(
            self.model_path,
            device=pick_device(self.settings.device),
            max_length=self.max_length,
            activation_fn=torch.nn.Identity(),
        )

    @cached_property
    def _scorer(self) -> _Scorer:
        with self._lock:
            return _Scorer.for_reranker(self)

    @property
    def runtime(self) -> RuntimeChoice:
        return self._scorer.choice

    @property
    def runtime_chosen(self) -> bool:
        return "_scorer" in self.__dict__

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        """One relevance score per text, in input order (float32)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        scorer = self._scorer
        out = np.empty(len(texts), dtype=np.float32)
        with self._lock:
            tokens = scorer.tokenize([(query, text) for text in texts])
            for batch in token_batches(
                tokens.lengths, self.settings.batch_tokens, self.settings.batch_size
            ):
                out[batch] = scorer.score(tokens, batch)
        return out


class _Scorer:
    def __init__(self, model: CrossEncoder, forward: Forward, choice: RuntimeChoice) -> None:
        self.model = model
        self.forward = forward
        self.choice = choice

    @classmethod
    def for_reranker(cls, reranker: CrossEncoderReranker) -> _Scorer:
        settings, model = reranker.settings, reranker.model
        gate_pairs, groups, quantize_pairs = calibration_pairs()

        def run(forward: Forward, pairs: list[tuple[str, str]] = gate_pairs) -> np.ndarray:
            probe = cls(model, forward, RuntimeChoice(REFERENCE, "probe"))
            tokens = probe.tokenize(pairs)
            return np.concatenate(
                [
                    probe.score(tokens, list(range(i, min(i + settings.batch_size, len(pairs)))))
                    for i in range(0, len(pairs), settings.batch_size)
                ]
            )

        def agreement(reference: np.ndarray, other: np.ndarray) -> float:
            return mean_rank_correlation(reference, other, groups)

        timed = gate_pairs[:TIMED_PAIRS]
        choice, forward = settle_runtime(
            EncoderModel(
                "rerank",
                reranker.model_path,
                reranker.max_length,
                model[0].auto_model,
                lambda batch: model.preprocess(batch),
                reranker.export_dir,
                RERANK_INT8_SKIP,
            ),
            RuntimeRequest(
                settings.backend,
                settings.precision,
                pick_device(settings.device),
                settings.min_rank_correlation,
            ),
            quantize_pairs,
            lambda build: Calibration(build, run, agreement, lambda f: run(f, timed), len(timed)),
        )
        return cls(model, forward, choice)

    def tokenize(self, pairs: list[tuple[str, str]]) -> Tokenized:
        queries, texts = [q for q, _ in pairs], [t for _, t in pairs]
        return Tokenized.encode(self.model.tokenizer, queries, self.model.max_length, texts)

    def score(self, tokens: Tokenized, rows: list[int]) -> np.ndarray:
        """The logits of ``rows`` of ``tokens``, in that order."""
        logits = self.forward(tokens.padded(rows))
        return np.asarray(logits.reshape(len(rows), -1)[:, 0], dtype=np.float32)


def calibration_pairs() -> tuple[list[tuple[str, str]], np.ndarray, list[tuple[str, str]]]:
    """(query, passage) pairs from the shipped calibration text: short texts as queries,
    long ones as passages. Gate pairs come with their query's group number (a ranking is
    compared within a query); the rest calibrate int8."""
    texts = calibration_texts()
    queries = [t for t in texts if len(t) < 200]
    passages = [t for t in texts if len(t) >= 400]
    gate: list[tuple[str, str]] = []
    groups: list[int] = []
    for number, query in enumerate(queries[:GATE_QUERIES]):
        start = number * GATE_PASSAGES % max(1, len(passages) - GATE_PASSAGES)
        for passage in passages[start : start + GATE_PASSAGES]:
            gate.append((query, passage))
            groups.append(number)
    rest = queries[GATE_QUERIES:]
    quantize = [(q, passages[i % len(passages)]) for i, q in enumerate(rest * 2)][:64]
    return gate, np.asarray(groups), quantize


def mean_rank_correlation(reference: np.ndarray, other: np.ndarray, groups: np.ndarray) -> float:
    """Spearman's correlation of two score lists within each group, averaged."""
    values = []
    for group in np.unique(groups):
        mask = groups == group
        a = np.argsort(np.argsort(reference[mask])).astype(np.float64)
        b = np.argsort(np.argsort(other[mask])).astype(np.float64)
        values.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(values))
