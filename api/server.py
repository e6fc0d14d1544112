"""Running the app under uvicorn: one process, since the engine lives in it."""

from __future__ import annotations

import socket

from ragline.api.services import EngineFactory, start_engine
from ragline.service.ingest_process import PrepareIngest
from ragline.settings import Settings


def page_url(host: str, port: int) -> str:
    """The chat page's address as a browser on this machine would open it."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    engine_factory: EngineFactory = start_engine,
    prepare_ingest: PrepareIngest | None = None,
) -> None:
    """``engine_factory``: the generation engine; ``prepare_ingest``: run on the job
    ingestion processes' components (tests and benchmarks pass stand-ins)."""
    import uvicorn

    from ragline.api.app import create_app
    from ragline.api.watchdog import start_watchdog

    # Before the engine starts: its processes must not outlive this one, nor a dead
    # server's linger beside them.
    start_watchdog(settings.storage.data_dir)

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # the engine is up and the port listens
                print(f"chat page: {page_url(config.host, config.port)}", flush=True)

    config = uvicorn.Config(
        create_app(settings, engine_factory, prepare_ingest),
        host=host or settings.api.host,
        port=port if port is not None else settings.api.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    Server(config).run()
