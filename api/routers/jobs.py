"""GET /v1/jobs/{id}: an ingestion job's status, progress and per-file errors."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from ragline.api.deps import PrincipalDep, ServicesDep
from ragline.api.errors import ApiError, not_found
from ragline.api.jobs import JobQueueUnavailable
from ragline.api.routers.common import ERRORS
from ragline.api.schemas import JobOut

router = APIRouter(tags=["collections"])


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses={**ERRORS, 503: {}})
async def get_job(job_id: str, services: ServicesDep, principal: PrincipalDep) -> JobOut:
    try:
        job = await asyncio.to_thread(services.jobs.store.get, job_id)
    except JobQueueUnavailable as exc:
        raise ApiError(503, str(exc), code="queue_unavailable") from None
    if job is None or not principal.can_use(job.collection):
        raise not_found(f"job {job_id!r}", param="job_id")
    return job.out()
