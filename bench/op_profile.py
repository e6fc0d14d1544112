"""Where an OpenVINO forward pass of the embedding model spends its time, per kind of
operation, at each precision and passage length, and how close its matrix products come
to the GEMM ceiling when they run inside the model.

    python -m bench.op_profile [--passages N] [--repeats R] [--name NAME]

The backends table puts a whole pass against the GEMM ceiling at its precision. This one
says what the rest of the pass is: OpenVINO's own per-node counters (PERF_COUNT) over
SciFact passages cut to 85 and 256 tokens, in the embedder's token-budget batches, summed
by kind. "matrix products" are the FullyConnected nodes (the feed-forward up-projection's
GELU, and at int8 the requantization of outputs, are fused into them and counted there);
"attention" is the fused scaled-dot-product-attention node (QKᵀ, mask, softmax, ·V).
The matrix products' own rate is their FLOPs (2·tokens·weights, bench/flops.py without
the attention terms) over their counted time, against the ceiling of bench/gemm.py measured
in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.backends import LENGTHS, PACKAGES, SCIFACT, passages
from bench.common import RESULTS, environment, write_table
from bench.flops import EncoderShape
from bench.gemm import Ceilings
from ragline.ingest.embed import Embedder, token_batches
from ragline.ingest.export_folder import numpy_inputs
from ragline.ingest.openvino_export import OpenVinoForward
from ragline.ingest.runtime import SPEED_FLAGS, cpu_flags, cpu_name, openvino_available
from ragline.ingest.tokens import HFTokenCounter
from ragline.settings import EmbeddingSettings

PRECISIONS = ("int8", "bf16", "fp32")
KINDS = ("matrix products", "attention", "layer norm", "elementwise", "data movement", "other")
MOVEMENT = {"Reorder", "Transpose", "Reshape", "Gather", "Convert", "Concat", "Broadcast",
            "Slice", "ShapeOf", "Squeeze", "Unsqueeze", "StridedSlice"}  # fmt: skip
ELEMENTWISE = {"Add", "Multiply", "MulAdd", "Eltwise", "Subtract", "Divide", "Power", "Sqrt",
               "FakeQuantize", "Select", "GreaterEqual", "Erf", "Gelu", "Tanh", "Exp"}  # fmt: skip


def kind_of(node_type: str, node_name: str) -> str:
    if node_type.startswith("FullyConnected"):
        return "matrix products"  # the linear layers (weights x activations)
    # The self-attention module's own nodes ("attention.self/...": its query, key and value
    # projections are "attention.self.query/..."): one fused node (named after the SDPA
    # at bf16 and int8, after a transpose at fp32) with the reshapes around it.
    if "attention.self/" in node_name or node_type in ("ScaledDotProductAttention", "MatMul"):
        return "attention"
    if node_type == "MVN":
        return "layer norm"
    if node_type in ELEMENTWISE or node_type == "Subgraph":
        return "elementwise"
    if node_type in MOVEMENT:
        return "data movement"
    return "other"


@dataclass(slots=True)
class Profile:
    precision: str
    tokens: int  # the passages' length in word pieces, as in bench.backends
    model_tokens: int  # with the special tokens: what each passage costs
    passages: int = 0
    wall_s: float = 0.0
    by_kind: Counter[str] = field(default_factory=Counter)  # seconds

    @property
    def counted_s(self) -> float:
        return sum(self.by_kind.values())

    def share(self, kind: str) -> float:
        return self.by_kind[kind] / self.counted_s if self.counted_s else 0.0


def profile(
    embedder: Embedder, precision: str, texts: list[str], length: int, repeats: int
) -> Profile:
    """The embedder's forward pass, recompiled with per-node counters, over ``texts`` in
    its own batches: one warm-up round (first shapes compile kernels), then ``repeats``."""
    encoder = embedder._encoder
    plain = encoder.forward
    if not isinstance(plain, OpenVinoForward):
        raise TypeError(f"{embedder.runtime_name} is not an OpenVINO runtime")
    counted = OpenVinoForward(plain.folder, precision, extra_config={"PERF_COUNT": True})
    request = counted.compiled.create_infer_request()
    tokens = encoder.tokenize(texts)
    batches = [
        numpy_inputs(tokens.padded(rows), counted.names)
        for rows in token_batches(tokens.lengths, embedder.batch_tokens, len(texts))
    ]
    for inputs in batches:
        request.infer(inputs)
    result = Profile(precision, length, max(tokens.lengths))
    for _ in range(repeats):
        for inputs in batches:
            started = time.perf_counter()
            request.infer(inputs)
            result.wall_s += time.perf_counter() - started
            for node in request.profiling_info:
                seconds = node.real_time.total_seconds()
                result.by_kind[kind_of(node.node_type, node.node_name)] += seconds
        result.passages += len(texts)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="op_profile")
    args = parser.parse_args()
    if not SCIFACT.exists():
        raise SystemExit(f"SciFact not found at {SCIFACT}")
    if not openvino_available("int8"):
        raise SystemExit("needs the openvino and nncf packages")

    exports = Path(tempfile.mkdtemp(prefix="ragline-op-profile-"))
    embedders = {
        p: Embedder(EmbeddingSettings(backend="openvino", precision=p), exports)  # type: ignore[arg-type]
        for p in PRECISIONS
    }
    reference = embedders["fp32"]
    counter = HFTokenCounter(reference.model_path)
    shape = EncoderShape.from_config(reference.model_path)
    ceilings = Ceilings(shape, reference.batch_tokens, with_layers=True)
    ceilings.measure()
    profiles = []
    for tokens in LENGTHS:
        texts = passages(args.passages, tokens, counter)
        for precision, embedder in embedders.items():
            profiles.append(profile(embedder, precision, texts, tokens, args.repeats))
        ceilings.measure(seconds=0.5)

    header = ["precision", "tokens", "passages/s (pass alone)", *(f"% {k}" for k in KINDS),
              "matrix products' rate G/s", "% of GEMM ceiling (matrix products)",
              "% of GEMM ceiling (whole pass)"]  # fmt: skip
    table = []
    for p in profiles:
        # Every token is computed: passages are cut to one length, so batches hold no padding.
        n = p.model_tokens
        matrix_flops = 2.0 * n * shape.layer_params * shape.layers * p.passages
        attention_flops = 4.0 * n * n * shape.hidden * shape.layers * p.passages
        ceiling = ceilings.found[p.precision].best
        matrix_rate = matrix_flops / p.by_kind["matrix products"]
        whole_rate = (matrix_flops + attention_flops) / p.wall_s
        table.append(
            [p.precision, p.tokens, f"{p.passages / p.wall_s:.1f}",
             *(f"{100 * p.share(k):.0f}%" for k in KINDS),
             f"{matrix_rate / 1e9:.0f}", f"{100 * matrix_rate / ceiling:.0f}%",
             f"{100 * whole_rate / ceiling:.0f}%"]
        )  # fmt: skip
    notes = [
        environment(PACKAGES),
        f"CPU: {cpu_name()}, with {', '.join(sorted(cpu_flags() & SPEED_FLAGS))}.",
        f"{args.passages} SciFact passages per length, {args.repeats} profiled rounds after "
        f"one warm-up, {reference.batch_tokens}-token batches; OpenVINO's node counters "
        "(their sum is within a few % of the wall time).",
        "GEMM ceiling per precision (bench/gemm.py, the faster of torch's square GEMM and "
        "the model's matrix products alone): "
        + ", ".join(f"{p} {c.best / 1e9:.0f} G/s" for p, c in ceilings.found.items())
        + ".",
    ]
    write_table(args.name, "Where a forward pass's time goes (OpenVINO)", header, table, notes)
    write_plot(args.name, profiles)


def write_plot(name: str, profiles: list[Profile]) -> Path:
    """One stacked bar per precision and length: each kind's share of the pass."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{p.precision}, {p.tokens} tokens" for p in profiles]
    figure, axis = plt.subplots(figsize=(8, 0.45 * len(profiles) + 1.4))
    left = [0.0] * len(profiles)
    positions = list(range(len(profiles)))[::-1]
    for kind in KINDS:
        shares = [100 * p.share(kind) for p in profiles]
        axis.barh(positions, shares, left=left, label=kind)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    axis.set_yticks(positions, labels, fontsize=8)
    axis.set_xlabel("% of the forward pass (OpenVINO node counters)", fontsize=8)
    axis.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    figure.tight_layout()
    path = RESULTS / f"{name}.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


if __name__ == "__main__":
    main()
