"""GET /health (engine, Redis, collections) and GET /metrics (Prometheus)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ragline.api.deps import OptionalPrincipalDep, PrincipalDep, ServicesDep
from ragline.api.schemas import Health

router = APIRouter(tags=["operations"])
ENGINE_CHECK_S = 5.0


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(services: ServicesDep, principal: OptionalPrincipalDep) -> JSONResponse:
    """200 while the engine answers (Redis down is "degraded": answers go on uncached);
    503 when the engine does not. Open to all (probes); ``collections`` counts those the
    key may use, and is null without a key when keys are configured."""
    engine: dict[str, object] = {"ok": True}
    try:
        await asyncio.wait_for(services.engine.check_health(), ENGINE_CHECK_S)
    except Exception as exc:
        engine = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    engine["model"] = services.model_id
    engine["unfinished_requests"] = services.engine.num_unfinished_requests()
    redis = await asyncio.to_thread(services.redis_status)
    names = await asyncio.to_thread(services.collections.names)
    pending = await asyncio.to_thread(services.jobs.store.pending)
    body = Health(
        status="ok" if engine["ok"] and redis != "down" else "degraded",
        engine=engine,
        redis=redis,
        collections=None if principal is None else sum(map(principal.can_use, names)),
        generation={"active": services.admission.active, "queued": services.admission.queued},
        ingest_queue=pending,
        encoders=services.components.runtimes(),
    )
    return JSONResponse(body.model_dump(), status_code=200 if engine["ok"] else 503)


@router.get("/metrics", response_class=Response, responses={401: {}})
def metrics(services: ServicesDep, principal: PrincipalDep) -> Response:
    """Prometheus metrics (with keys configured, for a request with a key)."""
    # A plain def: FastAPI runs it in a worker thread, where the Redis ping may block.
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, principal: PrincipalDep) -> JSONResponse:
    """The OpenAPI schema (with keys configured, for a request with a key)."""
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    """Swagger UI (it loads /openapi.json: with keys configured, use a key there)."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="ragline API")
