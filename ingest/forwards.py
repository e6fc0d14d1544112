"""A transformers model's forward pass on one runtime: torch at fp32 or bf16, an OpenVINO
export at fp32, bf16 or int8, or an ONNX Runtime export at fp32 or int8."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragline.ingest import onnx_export, openvino_export
from ragline.ingest.runtime import (
    Calibration,
    Forward,
    Runtime,
    RuntimeChoice,
    candidates,
    choice_record,
    choose,
    model_fingerprint,
)
from ragline.ingest.tokenized import MODEL_INPUTS

CALIBRATION_BATCH = 8  # texts per NNCF calibration sample


def model_inputs(features: dict[str, Any]) -> dict[str, Any]:
    return {name: features[name] for name in MODEL_INPUTS if name in features}


class TorchForward:
    def __init__(self, module: Any, precision: str) -> None:
        import torch

        if precision == "bf16":
            # A copy: the fp32 weights stay for the reference and for other users.
            module = copy.deepcopy(module).to(torch.bfloat16)
        elif precision != "fp32":
            raise ValueError(f"torch runs fp32 or bf16, not {precision}")
        self.module = module.eval()
        self.device = next(module.parameters()).device

    def __call__(self, features: dict[str, Any]) -> Any:
        import torch

        inputs = {name: value.to(self.device) for name, value in model_inputs(features).items()}
        with torch.inference_mode():
            output = self.module(**inputs, return_dict=True)
        # Back on the CPU in fp32: pooling and the gate work there, next to the mask.
        return output[0].float().cpu()


def build_forward(
    module: Any,
    preprocess: Callable[[list[str]], dict[str, Any]],
    runtime: Runtime,
    export_prefix: Path,
    calibration: Sequence[Any],
    int8_skip: Sequence[str] = (),
) -> Forward:
    """Exports go to ``<export_prefix>-<openvino|onnx>-<fp32|int8>``; ``calibration``:
    inputs for ``preprocess`` (texts, or (query, passage) pairs) that int8 quantization
    observes; ``int8_skip``: node-name patterns left unquantized (at bf16 in
    OpenVINO, fp32 in ONNX Runtime)."""
    if runtime.backend == "torch":
        return TorchForward(module, runtime.precision)
    # The longest and the shortest of a few inputs: the traced example holds padding.
    few = list(calibration[:16])
    example = model_inputs(preprocess([max(few, key=_size), min(few, key=_size)]))
    # fp32 and bf16 share one export: the precision is a compile option.
    exported_as = "int8" if runtime.precision == "int8" else "fp32"
    target = export_prefix.with_name(f"{export_prefix.name}-{runtime.backend}-{exported_as}")
    samples = [
        model_inputs(preprocess(list(calibration[i : i + CALIBRATION_BATCH])))
        for i in range(0, len(calibration), CALIBRATION_BATCH)
    ]
    if runtime.backend == "onnx":
        onnx_export.export(module, example, target, exported_as, samples, int8_skip)
        return onnx_export.OnnxForward(target)
    openvino_export.export(module, example, target, exported_as, samples, int8_skip)
    return openvino_export.OpenVinoForward(target, runtime.precision)


def _size(item: Any) -> int:
    return len(str(item))


@dataclass(frozen=True, slots=True)
class EncoderModel:
    """An encoder whose forward pass may move to another runtime: the embedder's
    sentence-transformer or the reranker's cross-encoder."""

    kind: str  # "embedding" or "rerank": names its exports and its choice record
    path: str  # the model's files, fingerprinted with max_length and library versions
    max_length: int
    module: Any  # the transformers module whose forward pass runs on the runtime
    preprocess: Callable[[list[Any]], dict[str, Any]]  # texts or pairs -> model inputs
    export_dir: Path
    int8_skip: tuple[str, ...] = ()  # node-name patterns int8 leaves at bf16


@dataclass(frozen=True, slots=True)
class RuntimeRequest:
    """What the settings ask for: backend and precision (or auto), device, and the
    lowest agreement with torch fp32 a runtime may have."""

    backend: str
    precision: str
    device: str
    minimum: float


def export_fingerprint(path: str, kind: str, max_length: int, int8_skip: Sequence[str] = ()) -> str:
    """Names a model's exports: its files, use, export recipe and library versions."""
    # A new recipe, a new export.
    recipe = "|".join([str(max_length), *int8_skip, onnx_export.RECIPE, openvino_export.RECIPE])
    return model_fingerprint(path, kind, recipe)


def settle_runtime(
    model: EncoderModel,
    request: RuntimeRequest,
    quantize_inputs: Sequence[Any],
    calibration: Callable[[Callable[[Runtime], Forward]], Calibration],
) -> tuple[RuntimeChoice, Forward]:
    """The runtime ``request`` allows that is fastest among those passing the gate (or the
    one recorded for this model and machine), with its forward pass. ``calibration``
    turns the builder of forward passes into the gate and timing for this kind of model;
    ``quantize_inputs`` are what int8 quantization observes."""
    fingerprint = export_fingerprint(model.path, model.kind, model.max_length, model.int8_skip)

    def build(runtime: Runtime) -> Forward:
        prefix = model.export_dir / f"{model.kind}-{fingerprint}"
        return build_forward(
            model.module, model.preprocess, runtime, prefix, quantize_inputs, model.int8_skip
        )

    options = candidates(request.backend, request.precision, request.device)
    record = choice_record(
        model.export_dir, fingerprint, request.backend, request.precision, request.device
    )
    return choose(options, calibration(build), request.minimum, record)
