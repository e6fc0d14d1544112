"""POST /v1/completions: plain text completion from the engine, no retrieval."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from ragline.api.deps import PrincipalDep, ServicesDep
from ragline.api.routers.common import ERRORS
from ragline.api.schemas import Completion, CompletionRequest
from ragline.api.serving.completions import ServingCompletion

router = APIRouter(tags=["completions"])


@router.post(
    ServingCompletion.route,
    response_model=Completion,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def completions(
    body: CompletionRequest, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response | BaseModel:
    """Continue ``prompt`` with the generation model (``model``: its id from /v1/models)."""
    return await ServingCompletion(services).serve(request, body, principal)
