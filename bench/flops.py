"""The CPU's FP32 FLOP limit for the embedding model: an upper bound on passages/s.

    python -m bench.flops [--tokens N] [--gemm]

FLOPs of one passage through a BERT-style encoder (all-MiniLM-L6-v2: 6 layers, hidden 384,
intermediate 1536, 12 heads) of n tokens, counting multiply-adds as 2 FLOPs and only the
matrix products (layer norms, softmax, GELU, pooling and the embedding lookup are a few
percent and left out, which keeps the bound an upper bound):

    per layer  8·n·d²        Q, K, V and output projections  (4 · 2·n·d·d)
             + 4·n·d·d_ff    feed-forward up and down        (2 · 2·n·d·d_ff)
             + 4·n²·d        attention scores QKᵀ and scores·V, all heads together

i.e. 2 · (non-embedding parameters) · n plus the attention terms.

The machine's peak FP32 rate is cores x clock x FLOPs/cycle, with FLOPs/cycle from the CPU
flags: AVX-512F → 16 FP32 lanes x 2 (FMA) = 32 per FMA unit; AVX2+FMA → 8 x 2 = 16 per
unit; 2 FMA units per core assumed. The clock is cpufreq's maximum where the kernel
exposes it, otherwise /proc/cpuinfo's "cpu MHz". Peak / FLOPs-per-passage is the bound.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.gemm import square_rate

CPUINFO = Path("/proc/cpuinfo")
CPUFREQ_MAX = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
FMA_UNITS = 2  # per core: Intel since Haswell (server parts), AMD since Zen 2


@dataclass(slots=True, frozen=True)
class EncoderShape:
    layers: int
    hidden: int
    intermediate: int
    heads: int

    @property
    def layer_params(self) -> int:
        """Weights of one layer's matrix products (no biases, no layer norms)."""
        return 4 * self.hidden * self.hidden + 2 * self.hidden * self.intermediate

    @classmethod
    def from_config(cls, model_path: str | Path) -> EncoderShape:
        """Read a Hugging Face BERT-style config.json (the sentence-transformers folder)."""
        config = json.loads((Path(model_path) / "config.json").read_text())
        return cls(
            int(config["num_hidden_layers"]),
            int(config["hidden_size"]),
            int(config["intermediate_size"]),
            int(config["num_attention_heads"]),
        )


MINILM_L6 = EncoderShape(layers=6, hidden=384, intermediate=1536, heads=12)


def encoder_flops(shape: EncoderShape, tokens: float) -> float:
    """FP32 FLOPs of one passage of ``tokens`` tokens (special tokens included)."""
    n, d = tokens, shape.hidden
    per_layer = 2 * shape.layer_params * n + 4 * n * n * d
    return shape.layers * per_layer


def mean_encoder_flops(shape: EncoderShape, token_counts: Iterable[int]) -> float:
    """Mean FLOPs per passage over real token counts. Attention grows with n², so this
    is at least ``encoder_flops`` at the mean count: the bound it gives is tighter."""
    counts = list(token_counts)
    if not counts:
        raise ValueError("no token counts")
    return sum(encoder_flops(shape, n) for n in counts) / len(counts)


@dataclass(slots=True, frozen=True)
class CpuPeak:
    cores: int
    ghz: float
    clock_source: str
    isa: str
    lanes: int  # FP32 lanes per vector register
    fma: bool
    units: int = FMA_UNITS

    @property
    def flops_per_cycle(self) -> int:
        """Per core: lanes x 2 (a fused multiply-add) x units; without FMA a multiply
        and an add issue on separate units, which is the same count."""
        return self.lanes * 2 * self.units if self.fma else self.lanes * 2

    @property
    def flops(self) -> float:
        return self.cores * self.ghz * 1e9 * self.flops_per_cycle

    def assumptions(self) -> list[str]:
        lines = [
            f"{self.cores} physical cores x {self.ghz:.2f} GHz ({self.clock_source}) x "
            f"{self.flops_per_cycle} FP32 FLOPs/cycle = {self.flops / 1e9:.0f} GFLOP/s peak",
            f"FLOPs/cycle: {self.isa}, {self.lanes} FP32 lanes x 2 (FMA) x {self.units} FMA "
            "units per core (assumed)"
            if self.fma
            else f"FLOPs/cycle: {self.isa}, {self.lanes} FP32 lanes, one multiply and one add "
            "per cycle (no FMA)",
        ]
        return lines


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks = []
    for raw in text.strip().split("\n\n"):
        block = {}
        for line in raw.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                block[key.strip()] = value.strip()
        if block:
            blocks.append(block)
    return blocks


def simd_from_flags(flags: set[str]) -> tuple[str, int, bool]:
    """(name, FP32 lanes, has FMA) of the widest vector unit the flags announce."""
    if "avx512f" in flags:
        return "AVX-512F", 16, True
    if "avx2" in flags and "fma" in flags:
        return "AVX2+FMA", 8, True
    if "avx" in flags:
        return "AVX", 8, "fma" in flags
    return "SSE", 4, False


def cpu_peak(
    cpuinfo: str | None = None,
    allowed: Sequence[int] | None = None,
    max_khz: float | None = None,
) -> CpuPeak:
    """Peak FP32 FLOP/s of the cores this process may run on (physical cores: SMT
    siblings share the vector units). Arguments are for tests; by default they are read
    from /proc/cpuinfo, the affinity mask and cpufreq."""
    if cpuinfo is None:
        cpuinfo = CPUINFO.read_text()
    if allowed is None:
        allowed = sorted(os.sched_getaffinity(0))
    if max_khz is None and CPUFREQ_MAX.exists():
        max_khz = float(CPUFREQ_MAX.read_text().strip())
    blocks = [b for b in _cpuinfo_blocks(cpuinfo) if int(b.get("processor", -1)) in allowed]
    if not blocks:
        raise ValueError("no processor of the affinity mask found in cpuinfo")
    cores = {(b.get("physical id", "0"), b.get("core id", b["processor"])) for b in blocks}
    flags = set(blocks[0].get("flags", "").split())
    isa, lanes, fma = simd_from_flags(flags)
    if max_khz:
        ghz, source = max_khz / 1e6, "cpufreq maximum"
    elif any("cpu MHz" in b for b in blocks):
        ghz = max(float(b["cpu MHz"]) for b in blocks if "cpu MHz" in b) / 1e3
        source = "/proc/cpuinfo cpu MHz; a boost clock would raise the peak"
    else:
        ghz = float(blocks[0].get("bogomips", "0")) / 2e3
        source = "BogoMIPS / 2"
    return CpuPeak(len(cores), ghz, source, isa, lanes, fma)


def passages_per_s_bound(peak_flops: float, flops_per_passage: float) -> float:
    return peak_flops / flops_per_passage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=float, default=128, help="tokens per passage")
    parser.add_argument("--model", default="builtin:all-MiniLM-L6-v2")
    parser.add_argument("--gemm", action="store_true", help="also time torch's FP32 GEMM")
    args = parser.parse_args()

    from ragline.ingest.embed import resolve_model_path

    shape = EncoderShape.from_config(resolve_model_path(args.model))
    peak = cpu_peak()
    flops = encoder_flops(shape, args.tokens)
    print(f"model {args.model}: {shape}")
    print(f"{flops / 1e9:.3f} GFLOP per passage of {args.tokens:g} tokens")
    for line in peak.assumptions():
        print(line)
    print(f"upper bound: {passages_per_s_bound(peak.flops, flops):.0f} passages/s")
    if args.gemm:
        gemm = square_rate("fp32")
        print(
            f"torch FP32 GEMM attains {gemm / 1e9:.0f} GFLOP/s ({gemm / peak.flops:.0%} of peak)"
            f": {passages_per_s_bound(gemm, flops):.0f} passages/s at that rate"
        )


if __name__ == "__main__":
    main()
