"""POST /v1/chat/completions: OpenAI-compatible grounded answers with their sources."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from ragline.api.deps import PrincipalDep, ServicesDep
from ragline.api.routers.common import ERRORS
from ragline.api.schemas import ChatCompletion, ChatCompletionRequest
from ragline.api.serving.chat import ServingChat

router = APIRouter(tags=["chat"])


@router.post(
    ServingChat.route,
    response_model=ChatCompletion,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response | BaseModel:
    """Answer the last user message from the collection named by ``model`` (or
    ``collection``), citing numbered sources; ``stream`` sends OpenAI chunks over SSE."""
    return await ServingChat(services).serve(request, body, principal)
