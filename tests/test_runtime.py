"""Encoder runtimes: token-budget batches, the candidates a machine offers, the quality
gate and the recorded choice; then the real exports (OpenVINO int8, ONNX Runtime fp32 and
int8) against torch fp32 on SciFact text."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from int8_graphs import int8_products

from ragline.ingest import runtime as rt
from ragline.ingest.embed import Embedder, mean_cosine, token_batches
from ragline.ingest.runtime import REFERENCE, Calibration, Runtime, candidates, choose
from ragline.settings import EmbeddingSettings


def test_token_batches_cover_every_text_once_within_the_budget() -> None:
    rng = random.Random(7)
    lengths = [rng.choice([3, 12, 40, 128, 256]) for _ in range(500)]
    batches = token_batches(lengths, max_tokens=2048, max_items=48)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(500))
    for batch in batches:
        widest = max(lengths[i] for i in batch)
        assert len(batch) <= 48
        assert len(batch) * widest <= 2048 or len(batch) == 1
        # Longest first: a batch's first text is its widest, so padding stays small.
        assert lengths[batch[0]] == widest
    # Short texts share big batches, long ones small: 256-token texts 8 to a pass.
    assert max(len(b) for b in batches if lengths[b[0]] == 256) == 8
    assert max(len(b) for b in batches if lengths[b[0]] == 3) == 48


def test_a_text_longer_than_the_budget_gets_a_batch_of_its_own() -> None:
    assert token_batches([5000, 10, 10], max_tokens=1000, max_items=8) == [[0], [1, 2]]
    assert token_batches([], 1000, 8) == []


def test_candidates_follow_the_settings_and_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert candidates("torch", "fp32", "cpu") == [REFERENCE]
    monkeypatch.setattr(rt, "cpu_flags", lambda: frozenset({"avx512f"}))
    names = [r.name for r in candidates("auto", "auto", "cpu")]
    assert "torch-bf16" not in names and "openvino-bf16" not in names  # emulated bf16: slow
    assert names[-1] == "torch-fp32"
    # Asked for explicitly, bf16 is offered even where it is emulated.
    assert candidates("torch", "bf16", "cpu") == [Runtime("torch", "bf16")]
    monkeypatch.setattr(rt, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    names = [r.name for r in candidates("auto", "auto", "cpu")]
    assert "torch-bf16" in names and "openvino-fp32" not in names  # dominated by ov bf16
    # ONNX Runtime only when asked for (its int8 ran at a third of OpenVINO's on an AMX
    # CPU); no bf16.
    monkeypatch.setattr(rt, "onnx_available", lambda: True)
    assert not any(r.backend == "onnx" for r in candidates("auto", "auto", "cpu"))
    assert not any(r.backend == "onnx" for r in candidates("auto", "int8", "cpu"))
    assert candidates("onnx", "auto", "cpu") == [Runtime("onnx", "int8"), Runtime("onnx", "fp32")]
    assert candidates("onnx", "int8", "cpu") == [Runtime("onnx", "int8")]
    assert candidates("onnx", "fp32", "cpu") == [Runtime("onnx", "fp32")]
    with pytest.raises(ValueError, match="no bf16"):
        candidates("onnx", "bf16", "cpu")
    monkeypatch.setattr(rt, "onnx_available", lambda: False)
    monkeypatch.setattr(rt, "openvino_available", lambda precision: False)
    assert [r.name for r in candidates("auto", "auto", "cpu")] == ["torch-bf16", "torch-fp32"]
    for backend in ("openvino", "onnx"):
        with pytest.raises(ValueError, match="no runtime"):
            candidates(backend, "auto", "cpu")
    with pytest.raises(ValueError, match="no runtime"):
        candidates("torch", "int8", "cpu")


def test_cuda_offers_torch_bf16_and_fp32_only(monkeypatch: pytest.MonkeyPatch) -> None:
    bf16 = Runtime("torch", "bf16")
    monkeypatch.setattr(rt, "cuda_has_fast_bf16", lambda: True)
    assert candidates("auto", "auto", "cuda") == [bf16, REFERENCE]
    assert candidates("torch", "auto", "cuda") == [bf16, REFERENCE]
    # Explicit precisions are honoured, whatever the GPU (bf16 is gated all the same).
    assert candidates("torch", "bf16", "cuda") == [bf16]
    assert candidates("auto", "fp32", "cuda") == [REFERENCE]
    monkeypatch.setattr(rt, "cuda_has_fast_bf16", lambda: False)  # a pre-Ampere GPU
    assert candidates("auto", "auto", "cuda") == [REFERENCE]
    assert candidates("auto", "bf16", "cuda") == [bf16]
    # OpenVINO and int8 are CPU runtimes: refused on CUDA, not silently replaced.
    monkeypatch.setattr(rt, "openvino_available", lambda precision: True)
    cpu_only = [("openvino", "auto"), ("openvino", "bf16"), ("onnx", "fp32"), ("auto", "int8")]
    for backend, precision in cpu_only:
        with pytest.raises(ValueError, match="on CUDA: only torch"):
            candidates(backend, precision, "cuda")


def test_choice_records_differ_per_device(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert rt.device_name("cpu") == "cpu"
    gpu = {"name": "cuda|NVIDIA H200"}
    monkeypatch.setattr(rt, "device_name", lambda d: "cpu" if d == "cpu" else gpu["name"])

    def record(device: str) -> Path:
        return rt.choice_record(tmp_path, "abc", "auto", "auto", device)

    cpu, cuda = record("cpu"), record("cuda")
    # One machine's CPU choice and CUDA choice never share a record.
    assert cpu != cuda and cpu.parent == cuda.parent == tmp_path
    assert "-auto-auto-cpu-" in cpu.name and "-auto-auto-cuda-" in cuda.name
    assert record("cuda") == cuda  # stable: every process finds the same record
    gpu["name"] = "cuda|NVIDIA A100"  # another GPU in the same machine: another record
    assert record("cuda") != cuda and record("cpu") == cpu


class _Synthetic:
    """Runtimes as functions of a fixed input: each has a speed and an error size, so the
    gate and the timing decide as they would for real models."""

    def __init__(self, noise: dict[str, float], seconds: dict[str, float]) -> None:
        self.noise, self.seconds = noise, seconds
        self.inputs = np.random.default_rng(0).normal(size=(40, 16))
        self.builds: list[str] = []

    def calibration(self) -> Calibration:
        def build(runtime: Runtime) -> Any:
            self.builds.append(runtime.name)
            rng = np.random.default_rng(len(self.builds))
            noise = self.noise[runtime.name] * rng.normal(size=self.inputs.shape)

            def forward(_features: Any) -> np.ndarray:
                time.sleep(self.seconds[runtime.name])
                return self.inputs + noise

            return forward

        def run(forward: Any) -> np.ndarray:
            return np.asarray(forward(None))

        return Calibration(build, run, mean_cosine, run, len(self.inputs))


def test_choose_keeps_the_fastest_runtime_that_passes_the_gate(tmp_path: Path) -> None:
    synthetic = _Synthetic(
        noise={"openvino-int8": 0.5, "openvino-bf16": 0.01, "torch-fp32": 0.0},
        seconds={"openvino-int8": 0.001, "openvino-bf16": 0.004, "torch-fp32": 0.012},
    )
    options = [Runtime("openvino", "int8"), Runtime("openvino", "bf16"), REFERENCE]
    record = tmp_path / "choice.json"
    choice, _ = choose(options, synthetic.calibration(), 0.99, record)
    # int8 is fastest here but too far from fp32 (cosine ~0.9): refused.
    assert choice.runtime == Runtime("openvino", "bf16")
    trials = {t.runtime: t for t in choice.trials}
    assert not trials["openvino-int8"].passed and trials["openvino-int8"].quality < 0.99
    assert trials["openvino-bf16"].passed and trials["openvino-bf16"].quality > 0.99
    assert choice.speedup > 1.5
    assert json.loads(record.read_text())["runtime"] == {"backend": "openvino", "precision": "bf16"}

    # Another process finds the record: it builds the chosen runtime only, measures nothing.
    synthetic.builds.clear()
    again, _ = choose(options, synthetic.calibration(), 0.99, record)
    assert again.runtime == choice.runtime and synthetic.builds == ["openvino-bf16"]


def test_an_explicit_runtime_below_the_gate_is_refused(tmp_path: Path) -> None:
    synthetic = _Synthetic(
        {"openvino-int8": 0.5, "torch-fp32": 0.0}, {"openvino-int8": 0, "torch-fp32": 0}
    )
    with pytest.raises(ValueError, match="quality gate"):
        choose([Runtime("openvino", "int8")], synthetic.calibration(), 0.99, tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()


def test_a_failing_runtime_is_skipped_with_its_error(tmp_path: Path) -> None:
    synthetic = _Synthetic({"torch-fp32": 0.0}, {"torch-fp32": 0.0})
    calibration = synthetic.calibration()
    build = calibration.build

    def broken(runtime: Runtime) -> Any:
        if runtime.backend == "openvino":
            raise RuntimeError("no CPU plugin")
        return build(runtime)

    calibration.build = broken
    choice, _ = choose([Runtime("openvino", "bf16"), REFERENCE], calibration, 0.99, tmp_path / "c")
    assert choice.runtime == REFERENCE
    assert "no CPU plugin" in choice.trials[0].error


@pytest.fixture(scope="module")
def scifact_texts(shared_data: Path) -> list[str]:
    lines = (shared_data / "beir" / "scifact" / "corpus.jsonl").read_text().splitlines()
    docs = [json.loads(line) for line in lines[:96]]
    # Full abstracts and their titles: long and short texts, as chunks and queries are.
    return [d["text"] for d in docs[:64]] + [d["title"] for d in docs[64:]]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "precision"),
    [("openvino", "int8"), ("torch", "bf16"), ("onnx", "int8"), ("onnx", "fp32")],
)
def test_faster_runtimes_match_fp32_vectors(
    backend: str, precision: str, scifact_texts: list[str], tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    reference = Embedder(EmbeddingSettings(backend="torch", precision="fp32"), exports)
    fast = Embedder(EmbeddingSettings(backend=backend, precision=precision), exports)
    assert fast.runtime.runtime == Runtime(backend, precision)
    assert fast.runtime.quality >= 0.99  # the gate, on the shipped calibration text
    expected = reference.encode(scifact_texts)
    got = fast.encode(scifact_texts)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(expected * got, axis=1)
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.97, (cosines.mean(), cosines.min())
    if precision == "fp32":  # the same arithmetic, another runtime: equal up to rounding
        assert cosines.min() >= 0.9999, cosines.min()
    # Nearest neighbours agree: each title finds the same abstract under both.
    titles, abstracts = slice(64, 96), slice(0, 64)
    same = np.argmax(expected[titles] @ expected[abstracts].T, 1) == np.argmax(
        got[titles] @ got[abstracts].T, 1
    )
    assert same.mean() >= 0.9, same.mean()
    # A text's vector does not depend on what it is batched with (a query embedded alone
    # must match the same text stored from a batch of longer ones).
    alone = np.stack([fast.encode([text])[0] for text in scifact_texts[60:68]])
    # bf16 rounds differently in differently shaped products (~1e-3 per component), as
    # OpenVINO int8's up-projections do (left at bf16); integer products are exact, and
    # dynamic int8's per-batch scales moved components by up to 0.03.
    some_bf16 = precision == "bf16" or (backend, precision) == ("openvino", "int8")
    assert np.abs(alone - got[60:68]).max() <= (2e-3 if some_bf16 else 1e-4)
    if backend != "torch":
        (export,) = [p for p in exports.iterdir() if p.is_dir() and backend in p.name]
        assert export.name.endswith(f"-{backend}-{precision}")
        weights = export / ("model.bin" if backend == "openvino" else "model.onnx")
        assert weights.is_file() and not list(exports.glob("*.tmp"))
        made = weights.stat().st_mtime
        # Another process (a server, the CLI) reuses the export and the recorded choice.
        again = Embedder(EmbeddingSettings(backend=backend, precision=precision), exports)
        assert again.encode(scifact_texts[:4]).shape == (4, 384)
        assert weights.stat().st_mtime == made
        assert again.runtime.to_json() == fast.runtime.to_json()
        if precision == "int8":
            quantized = int8_products(export, backend)
            # The feed-forward up-projections stay float (EMBED_INT8_SKIP); the rest of
            # the feed-forward and the attention output are int8.
            ups = {k: v for k, v in quantized.items() if "intermediate.dense" in k}
            assert len(ups) == 6 and not any(ups.values()), ups
            downs = [v for k, v in quantized.items() if ".output.dense" in k]
            assert len(downs) == 12 and all(downs), quantized


def test_texts_tokenized_once_give_the_models_own_inputs(scifact_texts: list[str]) -> None:
    """The embedder and the reranker tokenize a window once and cut each batch's padded
    inputs from it: the same tensors their models' own preprocess makes per batch, and the
    same vectors as sentence-transformers' encode."""
    import torch
    from sentence_transformers import CrossEncoder

    from ragline.ingest.tokenized import Tokenized

    embedder = Embedder(EmbeddingSettings(backend="torch", precision="fp32", max_seq_length=128))
    model = embedder.model
    texts = [*scifact_texts[:8], "", "ünïcödé — τext", scifact_texts[70]]  # long ones cut
    tokens = Tokenized.encode(model.tokenizer, texts, 128)
    assert max(tokens.lengths) == 128
    rows = [10, 0, 8, 3]
    own = model.preprocess([texts[row] for row in rows])
    mine = tokens.padded(rows)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(mine[name], own[name]), name
    expected = model.encode(texts, normalize_embeddings=True)
    assert np.allclose(embedder.encode(texts), expected, atol=1e-5)

    cross = CrossEncoder(embedder.model_path, num_labels=1, max_length=64)
    pairs = [(scifact_texts[70 + i], text) for i, text in enumerate(texts)]
    tokens = Tokenized.encode(cross.tokenizer, [q for q, _ in pairs], 64, [t for _, t in pairs])
    own = cross.preprocess([pairs[row] for row in rows])
    mine = tokens.padded(rows)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(mine[name], own[name]), name
