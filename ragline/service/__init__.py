"""The service layer: builds components from the settings and performs collection
operations, one implementation for the CLI, the HTTP API and the benchmarks."""
