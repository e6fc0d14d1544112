"""An exported model's folder (OpenVINO IR, ONNX), made once: concurrent processes wait
on one lock, and a crash mid-export leaves only a temporary folder, removed by the next
try."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock


def made_once(folder: Path, marker: str, make: Callable[[Path], None]) -> Path:
    """``folder/marker``, after ``make(tmp)`` has written the folder's files into ``tmp``
    (renamed to ``folder`` when it returns) unless an earlier call did."""
    target = folder / marker
    if target.is_file():
        return target
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if target.is_file():
            return target
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        make(tmp)
        os.replace(tmp, folder)
    return target


def numpy_inputs(features: dict[str, Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Tokenized features (torch tensors) as an exported model's named numpy inputs."""
    return {name: np.asarray(features[name]) for name in names}


def nncf_int8(
    model: Any,
    calibration: Sequence[dict[str, Any]],
    names: Sequence[str],
    skip_patterns: Sequence[str] = (),
    skip_names: Sequence[str] = (),
    skip_types: Sequence[str] = (),
) -> Any:
    """``model`` (an OpenVINO or ONNX graph) quantized to int8 by NNCF's transformer
    recipe: SmoothQuant folds BERT's outlier activation channels into the weights, then one
    static scale per tensor is fitted on all of ``calibration`` (tokenized batches of
    shipped text: the library's own helpers fetch a dataset from a hub). Nodes matched by
    ``skip_*`` stay at the model's float precision."""
    import nncf

    if not calibration:
        raise ValueError("int8 needs calibration samples")
    return nncf.quantize(
        model,
        nncf.Dataset([numpy_inputs(batch, names) for batch in calibration]),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(
            patterns=list(skip_patterns),
            names=list(skip_names),
            types=list(skip_types),
            validate=False,
        ),
    )
