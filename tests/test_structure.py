"""The package's shape: one import name, the layers contract, the version in one place."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import ragline
from ragline.api.app import create_app

REPO = Path(__file__).resolve().parent.parent
STAGES = ("ingest", "retrieve", "generate", "api")


def _installed() -> bool:
    try:
        metadata.distribution("ragline")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _installed(), reason="ragline is not installed (pip install -e .)")
def test_stages_import_under_ragline_only(tmp_path: Path) -> None:
    """Outside the checkout, the installed package answers to ragline.* and installs no
    top-level `ingest`, `retrieve`, `generate` or `api` that could collide."""
    script = (
        "import importlib.util, ragline.ingest, ragline.retrieve, ragline.generate, ragline.api\n"
        f"print([n for n in {STAGES!r} if importlib.util.find_spec(n) is not None])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_package_is_listed_for_installation() -> None:
    """A package folder missing from pyproject's list would be absent from a wheel."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(Path(folder).relative_to(REPO).parts)
        for folder, _, files in os.walk(REPO / "ragline", followlinks=True)
        if "__init__.py" in files
    }
    assert found == listed
    for stage in STAGES:
        assert config["package-dir"][f"ragline.{stage}"] == stage
        assert (REPO / "ragline" / stage).resolve() == (REPO / stage).resolve()


def test_layers_contract_holds() -> None:
    """Each layer imports only those below it (the contract is in pyproject.toml)."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    if not lint_imports.exists():
        pytest.skip("import-linter is not installed")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_version_has_one_source() -> None:
    if _installed():
        assert ragline.__version__ == metadata.version("ragline")
    assert create_app().version == ragline.__version__
