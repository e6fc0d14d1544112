"""The FastAPI app: ``create_app(settings)``; components start in the lifespan."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Scope

from ragline import __version__
from ragline.api import errors
from ragline.api.metrics import Metrics
from ragline.api.middleware import BodyLimit, RequestMetrics
from ragline.api.routers import (
    chat,
    collections,
    completions,
    embeddings,
    health,
    jobs,
    models,
    retrieve,
    ui,
)
from ragline.api.services import EngineFactory, build_services, start_engine
from ragline.service.ingest_process import PrepareIngest
from ragline.settings import Settings, load_settings

UPLOAD_FRAMING_BYTES = 1 << 20  # up to ~1,000 files' part headers
_UPLOAD_PATH = re.compile(r"/v1/collections/[^/]+/documents/?")


def create_app(
    settings: Settings | None = None,
    engine_factory: EngineFactory = start_engine,
    prepare_ingest: PrepareIngest | None = None,
) -> FastAPI:
    settings = settings or load_settings()
    metrics = Metrics()  # before the lifespan: the middleware needs it at build time

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await build_services(settings, engine_factory, metrics, prepare_ingest)
        app.state.services = services
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="ragline",
        summary="Grounded, cited answers over your documents; OpenAI-compatible.",
        version=__version__,
        lifespan=lifespan,
        # Served by the operations router instead: behind the API key when keys are set.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    for router in (chat, completions, models, embeddings, retrieve, collections, jobs, health, ui):
        app.include_router(router.router)
    ui.mount(app)  # the chat page's files, served without a key

    # The multipart framing (boundaries, part headers) on top of the files' own bytes,
    # which save_uploads holds to max_upload_mb.
    upload_limit = int(settings.api.max_upload_mb * 2**20) + UPLOAD_FRAMING_BYTES
    body_limit = int(settings.api.max_body_mb * 2**20)

    def limit(scope: Scope) -> int:
        is_upload = scope["method"] == "POST" and _UPLOAD_PATH.fullmatch(scope["path"])
        return upload_limit if is_upload else body_limit

    app.add_middleware(BodyLimit, limit=limit, idle_timeout_s=settings.api.body_idle_timeout_s)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: sees every status
    return app
