"""Benchmarks: each stage against a peer measured in the same run (``python -m bench``)."""

import ragline  # noqa: F401  (sets the offline environment before any model library loads)
