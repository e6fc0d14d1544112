"""The HTTP API: FastAPI app composing ingest → retrieve → generate.

Nothing outside ``api/`` imports it, except the ``ragline serve`` and ``ragline chat``
commands.
"""
