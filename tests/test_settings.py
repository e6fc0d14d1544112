from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ragline.config_file import render_defaults
from ragline.settings import DEFAULT_CONFIG, Settings, load_settings


def test_default_yaml_is_generated_from_the_model() -> None:
    """configs/default.yaml cannot drift from ragline/settings.py: regenerate it with
    `ragline config defaults --write configs/default.yaml`."""
    assert DEFAULT_CONFIG.read_text() == render_defaults()


def test_default_yaml_documents_every_setting_with_its_default() -> None:
    documented = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert documented == {
        name: field.annotation().model_dump(mode="json")  # type: ignore[misc]
        for name, field in Settings.model_fields.items()
    }
    for section in Settings.model_fields.values():
        for key, field in section.annotation.model_fields.items():  # type: ignore[union-attr]
            assert field.description, f"{key} has no description"


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
