"""A Hugging Face encoder exported to OpenVINO IR (fp32 weights, or int8 by NNCF's
post-training quantization), once per fingerprint, atomically, then compiled for the CPU.

sentence-transformers' own ``backend="openvino"`` needs optimum-intel, whose
dependencies replace this project's torch and transformers; ``openvino.convert_model``
takes the torch module directly, so only ``openvino`` and ``nncf`` are needed. Int8
calibration runs on shipped text: the library helpers default to a dataset on a hub.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragline.ingest.export_folder import made_once, nncf_int8, numpy_inputs

MODEL_FILE = "model.xml"
# Part of the export's fingerprint, as onnx_export.RECIPE: a new recipe makes a new export.
RECIPE = "first-output-only"


def export(
    module: Any,
    example: dict[str, Any],
    folder: Path,
    precision: str,
    calibration: Sequence[dict[str, Any]] = (),
    int8_skip: Sequence[str] = (),
) -> Path:
    """``folder/model.xml`` for ``module`` (a transformers model taking ``example``'s
    tensors), made if missing."""

    def make(tmp: Path) -> None:
        import openvino as ov

        names = list(example)
        model = ov.convert_model(module, example_input={k: example[k] for k in names})
        # The first output only (token embeddings, or logits): a BERT's pooler output was
        # computed and converted to fp32 on every pass, unread.
        model = ov.Model(model.outputs[:1], model.get_parameters(), model.get_friendly_name())
        if precision == "int8":
            model = nncf_int8(model, calibration, names, skip_patterns=int8_skip)
        # fp16 compression would round the weights: the precision is chosen at compile.
        ov.save_model(model, tmp / MODEL_FILE, compress_to_fp16=False)
        (tmp / "inputs.json").write_text(json.dumps(names))

    return made_once(folder, MODEL_FILE, make)


class OpenVinoForward:
    """A compiled model with an inference request per thread (safe from several threads;
    a request made per call cost a query's rerank a few milliseconds)."""

    def __init__(
        self,
        folder: Path,
        precision: str,
        threads: int | None = None,
        extra_config: dict[str, Any] | None = None,  # e.g. PERF_COUNT, for bench.op_profile
    ) -> None:
        import openvino as ov

        self.folder = folder
        self.names: list[str] = json.loads((folder / "inputs.json").read_text())
        # Without an explicit hint OpenVINO runs bf16 on any CPU that has it, fp32 included.
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        config.update(extra_config or {})
        self.compiled = ov.Core().compile_model(str(folder / MODEL_FILE), "CPU", config)
        self._local = threading.local()

    def __call__(self, features: dict[str, Any]) -> Any:
        import torch

        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        request.infer(numpy_inputs(features, self.names), share_inputs=True)
        # A copy: the request's output memory is written again by its next call.
        return torch.from_numpy(np.array(request.get_output_tensor(0).data, dtype=np.float32))
