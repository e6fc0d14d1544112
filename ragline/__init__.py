"""ragline: a RAG serving stack (ingest → retrieve → generate, composed by api)."""

__version__ = "0.1.0"
