"""One line describing the machine and package versions, printed beside every figure."""

from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Sequence
from importlib import metadata


def environment(packages: Sequence[str]) -> str:
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (absent)")
    return (
        f"{dt.date.today().isoformat()} · {platform.processor() or platform.machine()} · "
        f"{os.cpu_count()} CPUs · Python {platform.python_version()} · " + ", ".join(versions)
    )
