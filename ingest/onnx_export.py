"""A Hugging Face encoder exported to ONNX (fp32, or int8 by ONNX Runtime's static
quantization), once per fingerprint, atomically, then run by ONNX Runtime on the CPU.

Plain ``torch.onnx`` and ``onnxruntime``: sentence-transformers' own ``backend="onnx"``
needs optimum-onnx, which requires an older transformers than this project's.

Static, not dynamic, int8: dynamic quantization scales activations per pass over the
whole batch, padding included, so a text's vector depended on what it was batched with
(up to 0.03 per component for MiniLM): a query embedded alone no longer matched the same
text stored from a batch, and two executors disagreed. Static scales are fixed at export,
calibrated on the shipped text as OpenVINO's int8 is: vectors are the same in any batch.
Weights are scaled per output channel; activation-by-activation products (attention
scores) and the feed-forward down-projections stay fp32 (MiniLM: mean cosine 0.993 to
fp32 with them so, 0.93 with the down-projections int8 too). That passes the cosine gate
but cost 0.010 SciFact nDCG@10 (dense), so ``auto`` never picks it (see
``runtime.candidates``); MinMax, percentile and entropy calibration all stayed at
0.992-0.993: one scale per activation tensor fits BERT's outlier channels badly.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragline.ingest.export_folder import made_once, numpy_inputs

MODEL_FILE = "model.onnx"
OPSET = 17
# Left at fp32 by int8 whatever the model asks: the feed-forward down-projections, whose
# inputs (GELU outputs) have the widest range, which one scale per tensor fits worst.
# (BERT-family names; for other models the quality gate decides.)
INT8_SKIP = (r".*layer\.\d+\.output\.dense.*",)
# Part of the export's fingerprint: a new recipe makes a new export.
RECIPE = "static-qdq-minmax-avg|" + "|".join(INT8_SKIP)


def export(
    module: Any,
    example: dict[str, Any],
    folder: Path,
    precision: str,
    calibration: Sequence[dict[str, Any]] = (),
    int8_skip: Sequence[str] = (),
) -> Path:
    """``folder/model.onnx`` for ``module`` (a transformers model taking ``example``'s
    tensors, which should hold a padded row), made if missing. int8 calibrates its
    activation scales on ``calibration`` (model inputs); ``int8_skip``: node-name patterns (as
    for OpenVINO: dotted module paths) left at fp32, besides ``INT8_SKIP``."""

    def make(tmp: Path) -> None:
        names = list(example)
        fp32_path = tmp / ("model-fp32.onnx" if precision == "int8" else MODEL_FILE)
        _export_fp32(module, example, names, fp32_path)
        if precision == "int8":
            _quantize(fp32_path, tmp / MODEL_FILE, names, calibration, int8_skip)
            fp32_path.unlink()
        (tmp / "inputs.json").write_text(json.dumps(names))

    return made_once(folder, MODEL_FILE, make)


def _export_fp32(module: Any, example: dict[str, Any], names: list[str], path: Path) -> None:
    import torch

    # A copy: eager attention traces the padding mask as tensor ops (SDPA's path branches
    # on it in Python), and the module stays as the torch runtime uses it.
    traced = copy.deepcopy(module).eval()
    if hasattr(traced, "set_attn_implementation"):
        traced.set_attn_implementation("eager")
    wrapper = _positional(traced, names)
    args = tuple(example[name] for name in names)
    with torch.inference_mode():
        output_rank = wrapper(*args).dim()
    dynamic = {name: {0: "batch", 1: "tokens"} for name in names}
    # Token embeddings vary in length; a cross-encoder's logits only in batch.
    dynamic["output"] = {0: "batch", 1: "tokens"} if output_rank == 3 else {0: "batch"}
    # The tracer warns of every Python-level shape check it freezes; the export is checked
    # by the quality gate on padded batches instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            args,
            str(path),
            input_names=names,
            output_names=["output"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript
        )


def _quantize(
    source: Path,
    target: Path,
    names: list[str],
    calibration: Sequence[dict[str, Any]],
    int8_skip: Sequence[str],
) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not calibration:
        raise ValueError("ONNX Runtime int8 needs calibration samples")
    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {tensor.name for tensor in graph.initializer}
    patterns = [re.compile(p) for p in (*int8_skip, *INT8_SKIP)]
    # Exported node names are module paths with slashes ("/m/encoder/layer.0/output/dense/
    # MatMul"); the patterns are written for dotted ones.
    skipped = [
        node.name
        for node in graph.node
        if any(p.fullmatch(node.name.replace("/", ".")) for p in patterns)
        # Products of two activations (attention scores and their mix of values).
        or (node.op_type == "MatMul" and not weights.intersection(node.input))
    ]

    class Samples(CalibrationDataReader):
        def __init__(self) -> None:
            self.rest = iter(calibration)

        def get_next(self) -> dict[str, Any] | None:
            sample = next(self.rest, None)
            return None if sample is None else numpy_inputs(sample, names)

    root = logging.getLogger()
    root.addFilter(_no_preprocess_advice)
    try:
        quantize_static(
            str(source),
            str(target),
            Samples(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=skipped,
            calibrate_method=CalibrationMethod.MinMax,
            # The mean of each sample's extremes, not the one widest: finer steps for
            # the values most texts have (mean cosine to fp32 0.9929 against 0.9925).
            extra_options={"CalibMovingAverage": True},
        )
    finally:
        root.removeFilter(_no_preprocess_advice)


def _no_preprocess_advice(record: logging.LogRecord) -> bool:
    """Drops the quantizer's advice to pre-process the model (logged on the root logger at
    every export): the session optimizes the graph as it loads it, and the gate checks
    the result."""
    return not str(record.msg).startswith("Please consider")


def _positional(module: Any, names: list[str]) -> Any:
    """``module`` called with positional tensors in ``names``' order (the exporter's
    arguments), returning its first output."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = module

        def forward(self, *tensors: Any) -> Any:
            return self.m(**dict(zip(names, tensors, strict=True)), return_dict=True)[0]

    return Positional()


class OnnxForward:
    """An ONNX Runtime session on the CPU (``run`` is safe from several threads)."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.names: list[str] = json.loads((folder / "inputs.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: one per physical core
        # Threads spinning between passes would take the cores parsing and indexing use.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, features: dict[str, Any]) -> Any:
        import torch

        (output,) = self.session.run(["output"], numpy_inputs(features, self.names))
        return torch.from_numpy(output)
