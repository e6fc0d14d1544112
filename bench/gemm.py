"""The matrix-multiply ceiling an encoder's runtime is measured against, per precision.

Two GEMMs are timed and the faster kept, so the ceiling is never understated:
- torch's square GEMM (1024x1024; int8: ``torch._int_mm``, VNNI where the CPU has it);
- the encoder's own matrix products, with nothing between them: per layer the four
  hidden x hidden projections, the feed-forward up and down, as a chain of OpenVINO
  FullyConnected layers over ``rows`` tokens at once (int8: quantized by NNCF, as the
  int8 runtime is), and the same chain in ONNX Runtime (int8: its dynamic quantization,
  whose integer products are the kernels the static int8 export runs; on an AVX2-only CPU
  it is the faster int8 GEMM). A whole model
  cannot run faster than its matrix products alone.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragline.ingest.onnx_export import OPSET
from ragline.ingest.runtime import onnx_available

if TYPE_CHECKING:
    from bench.flops import EncoderShape

SQUARE = 1024
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(slots=True)
class Ceiling:
    square: float  # torch, FLOP/s (int8: OP/s)
    layers: float  # the encoder's own matrix products, the faster runtime; 0: not measured

    @property
    def best(self) -> float:
        return max(self.square, self.layers)


def _best_rate(run: Callable[[], object], flops: float, seconds: float) -> float:
    for _ in range(2):
        run()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        run()
        best = max(best, flops / (time.perf_counter() - started))
    return best


def square_rate(precision: str, seconds: float = 1.0) -> float:
    """FLOP/s of torch's square matrix multiply at ``precision``, best of rounds."""
    import torch

    if precision == "int8":
        a = torch.randint(-128, 127, (SQUARE, SQUARE), dtype=torch.int8)
        b = torch.randint(-128, 127, (SQUARE, SQUARE), dtype=torch.int8)

        def multiply() -> object:
            return torch._int_mm(a, b)
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        x, y = torch.randn(SQUARE, SQUARE, dtype=dtype), torch.randn(SQUARE, SQUARE, dtype=dtype)

        def multiply() -> object:
            return torch.mm(x, y)

    return _best_rate(multiply, 2 * SQUARE**3, seconds)


class LayerChain:
    """The encoder's matrix products as compiled OpenVINO models, one per precision."""

    def __init__(self, shape: EncoderShape, rows: int) -> None:
        import openvino as ov
        import torch

        d, ff = shape.hidden, shape.intermediate
        linears: list[torch.nn.Module] = []
        for _ in range(shape.layers):
            linears += [torch.nn.Linear(d, d) for _ in range(4)]
            linears += [torch.nn.Linear(d, ff), torch.nn.Linear(ff, d)]
        module = torch.nn.Sequential(*linears).eval()
        self.rows, self.flops = rows, 2 * shape.layer_params * shape.layers * rows
        self.input = np.random.default_rng(0).standard_normal((rows, d)).astype(np.float32)
        with torch.no_grad():
            model = ov.convert_model(module, example_input=torch.from_numpy(self.input))
        self.models = {"fp32": model, "bf16": model, "int8": self._quantized(model)}
        self.requests: dict[str, Any] = {}
        self.sessions = _onnx_sessions(module, self.input[None]) if onnx_available() else {}

    def _quantized(self, model: object) -> object:
        import nncf

        samples = [self.input * scale for scale in (0.5, 1.0, 2.0)]
        return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples))

    def rate(self, precision: str, seconds: float = 1.0) -> float:
        import openvino as ov

        if precision not in self.requests:
            hint = "f32" if precision == "fp32" else "bf16"
            compiled = ov.Core().compile_model(
                self.models[precision],
                "CPU",
                {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint},
            )
            self.requests[precision] = compiled.create_infer_request()
        request = self.requests[precision]
        rate = _best_rate(lambda: request.infer([self.input]), self.flops, seconds)
        if precision in self.sessions:
            session = self.sessions[precision]
            # A batch of one: the linears then export as MatMul + Add, as the model's do.
            tokens = {"x": self.input[None]}
            rate = max(rate, _best_rate(lambda: session.run(None, tokens), self.flops, seconds))
        return rate


def _onnx_sessions(module: Any, example: np.ndarray) -> dict[str, Any]:
    """ONNX Runtime sessions of ``module`` at fp32 and at dynamic int8 (weights per
    channel; no calibration needed for a chain of products)."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as folder:
        fp32, int8 = Path(folder) / "chain.onnx", Path(folder) / "chain-int8.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.from_numpy(example),),
                str(fp32),
                input_names=["x"],
                output_names=["y"],
                opset_version=OPSET,
                dynamo=False,
            )
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return {
            precision: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for precision, path in (("fp32", fp32), ("int8", int8))
        }


class Ceilings:
    """The best of each GEMM at each precision over every ``measure``: timed again
    between a benchmark's repeats, since a GEMM timed while something else ran would put
    the passages above it."""

    def __init__(self, shape: EncoderShape, rows: int, with_layers: bool) -> None:
        self.chain = LayerChain(shape, rows) if with_layers else None
        self.found = {precision: Ceiling(0.0, 0.0) for precision in PRECISIONS}

    def measure(self, seconds: float = 1.0) -> None:
        for precision, ceiling in self.found.items():
            ceiling.square = max(ceiling.square, square_rate(precision, seconds))
            if self.chain:
                ceiling.layers = max(ceiling.layers, self.chain.rate(precision, seconds))
