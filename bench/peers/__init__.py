"""The systems ragline is measured against, each run in the same process and run.

- ``plain``: a bare sentence-transformers encode loop and a FAISS search, the floor.
- ``llamaindex``: LlamaIndex's IngestionPipeline and VectorStoreIndex retriever, with the
  same embedding model folder and chunk size/overlap. Installed by scripts/bench-env.sh
  into .venv-bench only; the benchmarks skip it, saying so, where it is not importable.
- vLLM's own OpenAI server is the generation peer, started by bench/generate.py.
"""
