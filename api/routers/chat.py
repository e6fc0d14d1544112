"""POST /v1/chat/completions: OpenAI-compatible grounded answers with their sources."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response

from api.answers import (
    AnswerState,
    PreparedAnswer,
    check_max_tokens,
    collection_name,
    parse_conversation,
    prepare_answer,
    sampling_options,
    sources_out,
    stream_answer,
    usage,
)
from api.deps import PrincipalDep, ServicesDep
from api.disconnect import unless_disconnected
from api.errors import error_body
from api.routers.common import ERRORS, LeasedEventSource, sse
from api.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
)
from api.services import Services

log = logging.getLogger(__name__)
router = APIRouter(tags=["chat"])
ROUTE = "/v1/chat/completions"


@router.post(
    ROUTE,
    response_model=ChatCompletion,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response | ChatCompletion:
    """Answer the last user message from the collection named by ``model`` (or
    ``collection``), citing numbered sources; ``stream`` sends OpenAI chunks over SSE."""
    started = time.perf_counter()
    conversation = parse_conversation(body.messages)
    options = sampling_options(body, services.settings.generation.max_tokens)
    assert options.max_tokens is not None
    check_max_tokens(options.max_tokens, services.engine.max_model_len)
    opened = services.collection(collection_name(services, body), principal)
    lease = await services.admit()
    handed_over = False
    try:
        prepared = await prepare_answer(services, body, conversation, opened, options, started)
        ids = (f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()))
        if body.stream:
            response = LeasedEventSource(_events(services, prepared, body, *ids), lease)
            handed_over = True
            return response
        return await unless_disconnected(request, _complete(services, prepared, body, *ids))
    finally:
        if not handed_over:
            lease.release()


async def _complete(
    services: Services,
    prepared: PreparedAnswer,
    body: ChatCompletionRequest,
    id_: str,
    created: int,
) -> ChatCompletion:
    state = AnswerState()
    async for _ in stream_answer(services, prepared, state):
        pass
    return ChatCompletion(
        id=id_,
        created=created,
        model=body.model,
        choices=[
            ChatChoice(
                message=AssistantMessage(content="".join(state.text)),
                finish_reason=state.stats.finish_reason or "stop",
            )
        ],
        usage=usage(state.stats),
        sources=sources_out(state, prepared.prompt.sources, services.settings.api.snippet_chars),
    )


async def _events(
    services: Services,
    prepared: PreparedAnswer,
    body: ChatCompletionRequest,
    id_: str,
    created: int,
) -> AsyncIterator[dict[str, str]]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
        return sse(
            {
                "id": id_,
                "object": "chat.completion.chunk",
                "created": created,
                "model": body.model,
                "choices": choices,
                **extra,
            }
        )

    def delta(content: dict[str, str], finish_reason: str | None = None) -> dict[str, str]:
        return chunk([{"index": 0, "delta": content, "finish_reason": finish_reason}])

    state = AnswerState()
    yield delta({"role": "assistant", "content": ""})
    try:
        async for piece in stream_answer(services, prepared, state):
            if piece.text:
                yield delta({"content": piece.text})
    except Exception as exc:  # the status line is sent: report in-band, as OpenAI does
        log.exception("answer failed mid-stream")
        services.metrics.errors.labels(ROUTE, "stream").inc()
        yield sse(error_body(f"generation failed: {type(exc).__name__}", 500))
        yield sse("[DONE]")
        return
    yield delta({}, state.stats.finish_reason or "stop")
    sources = sources_out(state, prepared.prompt.sources, services.settings.api.snippet_chars)
    # OpenAI's usage chunk has no choices; ragline's sources ride on the same chunk.
    yield chunk(
        [],
        usage=usage(state.stats).model_dump() if body.include_usage else None,
        sources=[s.model_dump() for s in sources],
    )
    yield sse("[DONE]")
