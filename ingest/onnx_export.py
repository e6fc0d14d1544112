"""A Hugging Face encoder exported to ONNX (fp32, or int8 by NNCF's post-training
quantization, as the OpenVINO int8 export is), once per fingerprint, atomically, then run
by ONNX Runtime on the CPU.

Plain ``torch.onnx`` and ``onnxruntime``: sentence-transformers' own ``backend="onnx"``
needs optimum-onnx, which requires an older transformers than this project's.

Static int8, calibrated on the shipped text: vectors are the same in any batch (ONNX
Runtime's dynamic int8 scales activations per pass over the whole batch, padding
included, so a query embedded alone no longer matched the same text stored from a
batch). NNCF's ONNX backend rather than ONNX Runtime's own ``quantize_static``: its
transformer preset smooths BERT's outlier activation channels into the weights
(SmoothQuant) before one scale per tensor is fitted; MiniLM's mean cosine to fp32 rose
from 0.9925 to 0.9971 on SciFact passages, at the same speed.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragline.ingest.export_folder import made_once, nncf_int8, numpy_inputs

MODEL_FILE = "model.onnx"
OPSET = 17
# Part of the export's fingerprint: a new recipe makes a new export.
RECIPE = "nncf-onnx-transformer|fp32-shared-input-and-gather"


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
    activation scales on ``calibration`` (model inputs); ``int8_skip``: node-name
    patterns (as for OpenVINO: dotted module paths) left at fp32."""

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

    model = onnx.load(str(source))
    weights = {tensor.name for tensor in model.graph.initializer}
    patterns = [re.compile(p) for p in int8_skip]
    # Exported node names are module paths with slashes ("/m/encoder/layer.0/output/dense/
    # MatMul"); the patterns are written for dotted ones, as OpenVINO's node names are.
    skipped = [
        node.name
        for node in model.graph.node
        if any(p.fullmatch(node.name.replace("/", ".")) for p in patterns)
    ]
    # ONNX Runtime left int8 products that share their input (attention's query, key and
    # value) unfused, dequantizing their weights on every call: a short query took 2.5x
    # as long as at fp32. They stay fp32, as the embedding tables do (a Gather of an int8
    # table dequantized all of it per call).
    readers: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and weights.intersection(node.input):
            for tensor in set(node.input) - weights:
                readers.setdefault(tensor, []).append(node.name)
    skipped += [name for names_ in readers.values() if len(names_) > 1 for name in names_]
    quantized = nncf_int8(model, calibration, names, skip_names=skipped, skip_types=["Gather"])
    onnx.save(quantized, str(target))


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
