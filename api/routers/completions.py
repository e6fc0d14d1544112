"""POST /v1/completions: plain text completion from the engine, no retrieval."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response

from api.answers import check_max_tokens, sampling_options, usage
from api.deps import PrincipalDep, ServicesDep
from api.disconnect import unless_disconnected
from api.errors import ApiError, error_body
from api.routers.common import ERRORS, LeasedEventSource, sse
from api.schemas import Completion, CompletionChoice, CompletionRequest
from api.services import Services
from generate.types import GenerationStats, SamplingOptions

log = logging.getLogger(__name__)
router = APIRouter(tags=["completions"])
ROUTE = "/v1/completions"


@router.post(
    ROUTE,
    response_model=Completion,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def completions(
    body: CompletionRequest, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response | Completion:
    """Continue ``prompt`` with the generation model (``model``: its id from /v1/models)."""
    started = time.perf_counter()
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1 or not prompts[0]:
        raise ApiError(400, "send exactly one non-empty prompt", param="prompt")
    if body.model != services.model_id:  # a collection's name is a model id too
        services.collection(body.model, principal)
    options = sampling_options(body, 16)  # OpenAI's default for completions
    assert options.max_tokens is not None
    token_ids: list[int] = await asyncio.to_thread(services.engine.tokenizer.encode, prompts[0])
    check_max_tokens(options.max_tokens, services.engine.max_model_len, len(token_ids))
    lease = await services.admit()
    handed_over = False
    try:
        ids = (f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time()))
        if body.stream:
            events = _events(services, token_ids, options, body, started, *ids)
            response = LeasedEventSource(events, lease)
            handed_over = True
            return response
        return await unless_disconnected(
            request, _complete(services, token_ids, options, body, started, *ids)
        )
    finally:
        if not handed_over:
            lease.release()


async def _generate(
    services: Services,
    token_ids: list[int],
    options: SamplingOptions,
    started: float,
    stats_out: list[GenerationStats],
) -> AsyncIterator[str]:
    metrics = services.metrics
    first = True
    try:
        async for delta in services.engine.stream(token_ids, options):
            if first and delta.text:
                first = False
                metrics.ttft.observe(time.perf_counter() - started)
            if delta.stats is not None:
                stats_out.append(delta.stats)
            yield delta.text
    except (asyncio.CancelledError, GeneratorExit):
        metrics.disconnects.inc()
        raise
    if stats_out:
        s = stats_out[-1]
        metrics.stage.labels("prefill").observe(s.ttft_s)
        metrics.observe_generation(
            s.prompt_tokens, s.cached_prompt_tokens, s.output_tokens, s.tpot_s
        )


async def _complete(
    services: Services,
    token_ids: list[int],
    options: SamplingOptions,
    body: CompletionRequest,
    started: float,
    id_: str,
    created: int,
) -> Completion:
    stats: list[GenerationStats] = []
    text = "".join(
        [piece async for piece in _generate(services, token_ids, options, started, stats)]
    )
    final = stats[-1] if stats else GenerationStats(prompt_tokens=len(token_ids))
    return Completion(
        id=id_,
        created=created,
        model=body.model,
        choices=[CompletionChoice(text=text, finish_reason=final.finish_reason or "stop")],
        usage=usage(final),
    )


async def _events(
    services: Services,
    token_ids: list[int],
    options: SamplingOptions,
    body: CompletionRequest,
    started: float,
    id_: str,
    created: int,
) -> AsyncIterator[dict[str, str]]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
        return sse(
            {
                "id": id_,
                "object": "text_completion",
                "created": created,
                "model": body.model,
                "choices": choices,
                **extra,
            }
        )

    stats: list[GenerationStats] = []
    try:
        async for piece in _generate(services, token_ids, options, started, stats):
            if piece:
                yield chunk([{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}])
    except Exception as exc:
        log.exception("completion failed mid-stream")
        services.metrics.errors.labels(ROUTE, "stream").inc()
        yield sse(error_body(f"generation failed: {type(exc).__name__}", 500))
        yield sse("[DONE]")
        return
    final = stats[-1] if stats else GenerationStats(prompt_tokens=len(token_ids))
    yield chunk(
        [{"index": 0, "text": "", "finish_reason": final.finish_reason or "stop", "logprobs": None}]
    )
    if body.include_usage:
        yield chunk([], usage=usage(final).model_dump())
    yield sse("[DONE]")
