from pathlib import Path

import pytest
from pydantic import ValidationError

from ragline.settings import load_settings


def test_yaml_defaults_are_loaded() -> None:
    settings = load_settings()
    assert settings.embedding.model == "builtin:all-MiniLM-L6-v2"
    assert settings.chunking.size == 256


def test_environment_overrides_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLINE_CHUNKING__SIZE", "384")
    monkeypatch.setenv("RAGLINE_STORAGE__DATA_DIR", "/tmp/elsewhere")
    settings = load_settings()
    assert settings.chunking.size == 384
    assert settings.storage.data_dir == Path("/tmp/elsewhere")


def test_alternate_yaml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "custom.yaml"
    config.write_text("chunking:\n  size: 128\n  overlap: 8\n")
    monkeypatch.setenv("RAGLINE_CONFIG", str(config))
    settings = load_settings()
    assert (settings.chunking.size, settings.chunking.overlap) == (128, 8)


def test_overlap_must_be_smaller_than_size() -> None:
    with pytest.raises(ValidationError, match="overlap"):
        load_settings(chunking={"size": 64, "overlap": 64})


def test_redis_url_from_environment_and_explicitly_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    assert load_settings().cache.redis_url == "redis://127.0.0.1:6379/3"
    monkeypatch.setenv("RAGLINE_CACHE__REDIS_URL", "off")
    assert load_settings().cache.redis_url is None
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.delenv("RAGLINE_CACHE__REDIS_URL")
    assert load_settings().cache.redis_url is None
