"""Running the app under uvicorn: one process, since the engine lives in it."""

from __future__ import annotations

from ragline.api.services import EngineFactory, start_engine
from ragline.settings import Settings


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    engine_factory: EngineFactory = start_engine,
) -> None:
    """``engine_factory``: the generation engine (tests pass a stand-in)."""
    import uvicorn

    from ragline.api.app import create_app
    from ragline.api.watchdog import start_watchdog

    # Before the engine starts: its processes must not outlive this one, nor a dead
    # server's linger beside them.
    start_watchdog(settings.storage.data_dir)

    config = uvicorn.Config(
        create_app(settings, engine_factory),
        host=host or settings.api.host,
        port=port if port is not None else settings.api.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
