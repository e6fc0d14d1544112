"""Where an encoder's forward pass runs: torch (fp32, bf16), OpenVINO (fp32, bf16, int8)
or ONNX Runtime (fp32, int8) on the CPU; torch (fp32, bf16) on CUDA.

fp32 leaves an AVX-512 CPU's AVX512_BF16 and VNNI units idle: bf16 and int8 run the
same MiniLM 2-4x faster; on an AVX2-only CPU, OpenVINO fp32 gains 1.1-1.5x; on a GPU,
bf16 is the tensor cores' own precision. Every choice other than torch fp32 must pass a
quality gate (its outputs against fp32 ones on shipped text) before it is used; ``auto``
times the candidates that pass and keeps the fastest. The choice is made once per
machine, device, model and library versions, and recorded next to the exports
(``choice-*.json``), so every process on the machine (server, CLI, tests) uses the same
one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from filelock import FileLock

# Fastest first, as measured on AVX-512 CPUs (MiniLM-L6, 256 tokens: OpenVINO int8 4.2x
# torch fp32, OpenVINO bf16 2.8x, ONNX Runtime int8 2.4x (dynamic), torch bf16 2.2x,
# OpenVINO fp32 1.3x); on AVX2 only: OpenVINO fp32 1.1-1.5x, ONNX Runtime int8 1.25-1.46x,
# OpenVINO int8 0.95-1.1x; on an AMX CPU OpenVINO int8 and bf16 and torch bf16 within 10%
# of each other, 3.2-3.7x the plain fp32 loop (attention and elementwise work, not the
# matrix products, take most of a pass there). ``auto`` times those that pass the gate:
# the order only breaks ties. ONNX Runtime's are offered only when asked for (see ``candidates``).
PREFERENCE = (
    ("openvino", "int8"),
    ("openvino", "bf16"),
    ("onnx", "int8"),
    ("torch", "bf16"),
    ("openvino", "fp32"),
    ("onnx", "fp32"),
    ("torch", "fp32"),
)
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
SPEED_FLAGS = BF16_FLAGS | {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"}
TIMING_ROUNDS = 3
VERSIONED = (
    "torch",
    "transformers",
    "sentence-transformers",
    "openvino",
    "nncf",
    "onnx",
    "onnxruntime",
)


@dataclass(frozen=True, slots=True)
class Runtime:
    backend: str  # torch | openvino
    precision: str  # fp32 | bf16 | int8

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.precision}"

    @property
    def is_reference(self) -> bool:
        return self.backend == "torch" and self.precision == "fp32"


REFERENCE = Runtime("torch", "fp32")


@dataclass(slots=True)
class Trial:
    """One candidate as the choice saw it."""

    runtime: str
    quality: float  # mean cosine (embeddings) or rank correlation (scores) to fp32
    items_per_s: float
    passed: bool
    error: str = ""


@dataclass(slots=True)
class RuntimeChoice:
    runtime: Runtime
    reason: str
    quality: float = 1.0
    items_per_s: float = 0.0
    reference_items_per_s: float = 0.0
    trials: list[Trial] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        if not self.reference_items_per_s:
            return 1.0
        return self.items_per_s / self.reference_items_per_s

    def summary(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime.name,
            "reason": self.reason,
            "quality": round(self.quality, 5),
            "speedup_vs_fp32": round(self.speedup, 2),
            "trials": [asdict(t) for t in self.trials],
        }

    def to_json(self) -> str:
        body = asdict(self)
        body["runtime"] = asdict(self.runtime)
        return json.dumps(body, indent=2)

    @classmethod
    def from_json(cls, text: str) -> RuntimeChoice:
        body = json.loads(text)
        body["runtime"] = Runtime(**body["runtime"])
        body["trials"] = [Trial(**t) for t in body["trials"]]
        return cls(**body)


class Forward(Protocol):
    """The transformer's forward pass: tokenized features in, its first output (token
    embeddings or logits) out, as float32."""

    def __call__(self, features: dict[str, Any]) -> Any: ...


@cache
def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@cache
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_fast_bf16() -> bool:
    return bool(cpu_flags() & BF16_FLAGS)


def openvino_available(precision: str) -> bool:
    needed = ["openvino"] + (["nncf"] if precision == "int8" else [])
    return all(importlib.util.find_spec(name) is not None for name in needed)


def onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def installed(backend: str, precision: str) -> bool:
    """Whether the packages ``backend`` needs at ``precision`` are importable."""
    if backend == "openvino":
        return openvino_available(precision)
    if backend == "onnx":
        return onnx_available()
    return True


@cache
def cuda_has_fast_bf16() -> bool:
    """Whether the current CUDA device does bf16 in hardware (Ampere and later)."""
    import torch

    if not torch.cuda.is_available():
        return False
    return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def cuda_candidates(backend: str, precision: str) -> list[Runtime]:
    """On CUDA only torch runs (the OpenVINO and ONNX exports run on the CPU), at bf16 or
    fp32."""
    if backend not in ("auto", "torch") or precision == "int8":
        raise ValueError(
            f"no runtime for backend={backend!r} precision={precision!r} on CUDA: only torch "
            "(fp32 or bf16) runs there; OpenVINO, ONNX Runtime and int8 are CPU runtimes "
            "(set device: cpu to use them)"
        )
    if precision != "auto":
        return [Runtime("torch", precision)]
    if cuda_has_fast_bf16():
        return [Runtime("torch", "bf16"), REFERENCE]
    return [REFERENCE]


def candidates(backend: str, precision: str, device: str) -> list[Runtime]:
    """The runtimes ``auto`` may choose from, fastest first. On CUDA: torch bf16 (where
    the GPU has it) and fp32. An explicit choice is returned even if the CPU or GPU lacks
    fast bf16 (it still works)."""
    if device == "cuda":
        return cuda_candidates(backend, precision)
    found = []
    for name, bits in PREFERENCE:
        if backend not in ("auto", name) or precision not in ("auto", bits):
            continue
        if not installed(name, bits):
            continue
        if name == "onnx" and backend != "onnx":
            # Its fp32 is no faster than OpenVINO's; its int8 (NNCF's recipe) passes both
            # gates (MiniLM: cosine 0.997, SciFact nDCG@10 within 0.005) and ran 1.25x /
            # 1.19x OpenVINO fp32 at 85 / 256 tokens on an AVX2 CPU, but 0.39x / 0.34x
            # OpenVINO int8 on an AMX one (bench/results/backends-amx): used when asked for.
            continue
        if bits == "bf16" and precision == "auto" and not has_fast_bf16():
            continue  # emulated bf16 is slower than fp32
        if name == "torch" and bits == "int8":
            continue
        if (name, bits) == ("openvino", "fp32") and precision == "auto" and has_fast_bf16():
            continue  # never faster than OpenVINO bf16 where bf16 is fast
        found.append(Runtime(name, bits))
    if not found:
        raise ValueError(
            f"no runtime for backend={backend!r} precision={precision!r} on this machine "
            "(OpenVINO int8 needs the openvino and nncf packages, ONNX Runtime the onnx and "
            "onnxruntime ones; torch has no int8 here, ONNX Runtime no bf16)"
        )
    if REFERENCE not in found and backend == "auto" and precision == "auto":
        found.append(REFERENCE)
    return found


def default_export_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragline" / "exports"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
    return versions


def model_fingerprint(model_path: str | Path, kind: str, extra: str = "") -> str:
    """Identifies a model's files, its use and the libraries that would export it: a new
    checkpoint (a retrained reranker) or a library upgrade makes a new export."""
    digest = hashlib.sha256(f"{kind}|{extra}|{library_versions()}".encode())
    folder = Path(model_path)
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    for path in files:
        if path.suffix in (".json", ".txt", ".safetensors", ".bin", ".model"):
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes() if path.stat().st_size < 1 << 20 else _big(path))
    if not files:
        digest.update(str(model_path).encode())  # a hub name: its cache decides
    return digest.hexdigest()[:16]


def _big(path: Path) -> bytes:
    """Size plus head and tail: weights files differ there when they differ at all."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
        handle.seek(max(0, size - (1 << 20)))
        tail = handle.read()
    return str(size).encode() + head + tail


@dataclass(slots=True)
class Calibration:
    """What ``choose`` needs from an encoder: build a runtime's forward pass, run a set of
    inputs through it, and compare two outputs (higher = closer, 1 = equal)."""

    build: Callable[[Runtime], Forward]
    run: Callable[[Forward], np.ndarray]  # the whole gate set
    agreement: Callable[[np.ndarray, np.ndarray], float]
    time: Callable[[Forward], object]  # a smaller set, timed
    timed_items: int


def choose(
    candidates_: Sequence[Runtime],
    calibration: Calibration,
    threshold: float,
    record: Path,
) -> tuple[RuntimeChoice, Forward]:
    """The fastest candidate whose agreement with torch fp32 reaches ``threshold``,
    reusing the choice recorded at ``record`` by an earlier process. A single candidate
    (an explicit setting) is still gated: below the threshold it is refused."""
    record.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(record) + ".lock"):
        if record.is_file():
            choice = RuntimeChoice.from_json(record.read_text())
            if choice.runtime in candidates_:
                return choice, calibration.build(choice.runtime)
        choice, forward = _measure(candidates_, calibration, threshold)
        tmp = record.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(choice.to_json())
        os.replace(tmp, record)
        return choice, forward


def _measure(
    candidates_: Sequence[Runtime], calibration: Calibration, threshold: float
) -> tuple[RuntimeChoice, Forward]:
    """Gate each candidate on the whole calibration set, then time those that passed in
    turns, best of ``TIMING_ROUNDS``: another process's burst then slows every candidate
    alike instead of deciding the choice."""
    if list(candidates_) == [REFERENCE]:
        only = RuntimeChoice(REFERENCE, "torch fp32 (the reference) asked for")
        return only, calibration.build(REFERENCE)
    reference_forward = calibration.build(REFERENCE)
    reference = calibration.run(reference_forward)
    trials: dict[Runtime, Trial] = {}
    passed: dict[Runtime, Forward] = {}
    for runtime in candidates_:
        if runtime.is_reference:
            trials[runtime] = Trial(runtime.name, 1.0, 0.0, True)
            passed[runtime] = reference_forward
            continue
        try:
            forward = calibration.build(runtime)
            quality = calibration.agreement(reference, calibration.run(forward))
        except Exception as exc:  # a runtime that fails is not chosen
            trials[runtime] = Trial(runtime.name, 0.0, 0.0, False, f"{type(exc).__name__}: {exc}")
            continue
        trials[runtime] = Trial(runtime.name, quality, 0.0, quality >= threshold)
        if quality >= threshold:
            passed[runtime] = forward
    if not passed:
        failed = ", ".join(f"{t.runtime} {t.quality:.4f} {t.error}" for t in trials.values())
        raise ValueError(f"no runtime passed the quality gate ({threshold}): {failed}")
    timed = dict(passed)
    timed.setdefault(REFERENCE, reference_forward)  # for the speed-up reported
    for _ in range(TIMING_ROUNDS):
        for runtime, forward in timed.items():
            started = time.perf_counter()
            calibration.time(forward)
            rate = calibration.timed_items / max(time.perf_counter() - started, 1e-9)
            trial = trials.setdefault(runtime, Trial(runtime.name, 1.0, 0.0, True))
            trial.items_per_s = max(trial.items_per_s, rate)
    best = max(passed, key=lambda runtime: trials[runtime].items_per_s)
    many = len(candidates_) > 1
    choice = RuntimeChoice(
        best,
        "fastest that passed the gate" if many else "asked for; passed the gate",
        trials[best].quality,
        trials[best].items_per_s,
        trials[REFERENCE].items_per_s,
        [trials[r] for r in candidates_ if r in trials],
    )
    return choice, passed[best]


def device_name(device: str) -> str:
    """``cpu``, or ``cuda`` and the GPU's name: what a choice was timed on."""
    if device == "cuda":
        import torch

        return f"cuda|{torch.cuda.get_device_name()}"
    return device


def choice_record(
    export_dir: Path, fingerprint: str, backend: str, precision: str, device: str
) -> Path:
    """Where the choice for this model, setting and machine is kept: the machine is the
    CPU's name and count and the device (a CPU choice and a CUDA one never collide)."""
    # The flags too: clouds give one name ("AMD EPYC") to CPUs with and without AVX-512.
    flags = ",".join(sorted(cpu_flags() & SPEED_FLAGS))
    machine = hashlib.sha256(
        f"{cpu_name()}|{os.cpu_count()}|{flags}|{device_name(device)}".encode()
    ).hexdigest()[:8]
    return export_dir / f"choice-{fingerprint}-{backend}-{precision}-{device}-{machine}.json"


def calibration_texts() -> list[str]:
    """Shipped passages (from the Apache-2.0 sample documents, chunked by ragline) used to
    calibrate int8 and to gate every runtime."""
    path = Path(__file__).with_name("calibration.jsonl")
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
