"""`ragline serve` with the scripted engine of test_api_fast, as a process of its own:
what the crash tests kill with SIGKILL. Settings come from RAGLINE_* variables.

    python tests/fake_serve.py PORT
"""

from __future__ import annotations

import sys

from test_api_fast import FakeEngine

from ragline.api.server import serve
from ragline.settings import load_settings

if __name__ == "__main__":
    engine = FakeEngine()
    serve(load_settings(), "127.0.0.1", int(sys.argv[1]), engine_factory=lambda _: engine)  # type: ignore[arg-type,return-value]
