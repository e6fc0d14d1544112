"""Batch ingestion on a Ray cluster (``ingest.executor: ray``; the ``ray`` extra).

Only ``ragline.ingest.executor`` imports this package, and only for that executor: a
local ingestion never imports Ray.
"""
