"""``configs/default.yaml`` rendered from the settings model, so that every default and
its documentation are written once, in ``ragline/settings.py``.

``ragline config defaults --write configs/default.yaml`` regenerates the file; a test
fails when the committed file and the model drift apart.
"""

from __future__ import annotations

import textwrap
from typing import Any

import yaml
from pydantic import BaseModel

from ragline.settings import DEFAULT_CONFIG, Settings

HEADER = f"""\
# ragline defaults, generated from ragline/settings.py by
#   ragline config defaults --write {DEFAULT_CONFIG.parent.name}/{DEFAULT_CONFIG.name}
# (do not edit by hand: a test compares the two). To change a setting, set an environment
# variable RAGLINE_<SECTION>__<KEY> (e.g. RAGLINE_CHUNKING__SIZE=384), or point
# RAGLINE_CONFIG at a YAML file of your own holding only the keys you change.
"""


def _scalar(value: Any) -> str:
    text: str = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True)
    return text.strip().removesuffix("...").strip()


def _section(name: str, model: type[BaseModel]) -> list[str]:
    lines = [f"{name}:"]
    defaults = model().model_dump(mode="json")
    for key, field in model.model_fields.items():
        if field.description:
            lines += textwrap.wrap(
                field.description, 88, initial_indent="  # ", subsequent_indent="  # "
            )
        lines.append(f"  {key}: {_scalar(defaults[key])}")
    return lines


def render_defaults() -> str:
    lines = [HEADER.rstrip()]
    for name, field in Settings.model_fields.items():
        section = field.annotation
        assert isinstance(section, type) and issubclass(section, BaseModel)
        lines += ["", *_section(name, section)]
    return "\n".join(lines) + "\n"


def render_effective(settings: Settings) -> str:
    """The settings in force (defaults, YAML, environment), as YAML."""
    text: str = yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False, width=100)
    return text
