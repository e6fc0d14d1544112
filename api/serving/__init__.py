"""Per-endpoint serving classes over one shared base (after vLLM's OpenAI entrypoints):
the routers parse HTTP, these do the work."""
