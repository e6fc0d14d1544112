"""A chat request as a grounded answer: conversation → retrieval → prompt → stream.

Everything that can reject a request (bad conversation, unknown collection, prompt too
long, server full) happens before the first byte, so it gets a proper status code; once
streaming has begun only the engine can fail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import PurePath

from api.errors import ApiError
from api.registry import OpenCollection
from api.schemas import (
    ChatCompletionRequest,
    ChatMessage,
    PromptTokensDetails,
    SamplingFields,
    SourceOut,
    Usage,
)
from api.services import Services
from generate.prompt import PromptTooLongError, RagPrompt, Source
from generate.rag import AnswerDelta
from generate.types import ChatTurn, GenerationStats, SamplingOptions
from retrieve.types import RetrievalRequest, RetrievalResult

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Conversation:
    question: str
    history: list[ChatTurn]
    previous: tuple[str, str] | None  # the last (question, answer) pair, for prefetch


@dataclass(slots=True)
class PreparedAnswer:
    question: str
    prompt: RagPrompt
    retrieval: RetrievalResult
    request: RetrievalRequest
    opened: OpenCollection
    options: SamplingOptions
    started: float  # perf_counter when the HTTP request arrived


@dataclass(slots=True)
class AnswerState:
    """Filled while an answer streams; read by whoever renders the response."""

    text: list[str] = field(default_factory=list)
    cited: list[Source] = field(default_factory=list)
    attributed: list[Source] = field(default_factory=list)
    stats: GenerationStats = field(default_factory=GenerationStats)


def parse_conversation(messages: list[ChatMessage]) -> Conversation:
    if not messages:
        raise ApiError(400, "messages must not be empty", param="messages", code="empty_messages")
    last = messages[-1]
    question = last.text.strip()
    if last.role != "user" or not question:
        raise ApiError(
            400,
            "the last message must be a user message with text content",
            param="messages",
            code="invalid_messages",
        )
    history = [
        ChatTurn("system" if m.role == "developer" else m.role, m.text)
        for m in messages[:-1]
        if m.text.strip()
    ]
    previous = None
    for i in range(len(history) - 1, 0, -1):
        if history[i].role == "assistant" and history[i - 1].role == "user":
            previous = (history[i - 1].content, history[i].content)
            break
    return Conversation(question, history, previous)


def sampling_options(body: SamplingFields, default_max_tokens: int) -> SamplingOptions:
    return SamplingOptions(
        max_tokens=body.max_completion_tokens or body.max_tokens or default_max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stop=body.stop_list,
    )


def check_max_tokens(max_tokens: int, max_model_len: int, prompt_tokens: int = 0) -> None:
    if prompt_tokens + max_tokens > max_model_len:
        raise ApiError(
            400,
            f"this model's maximum context length is {max_model_len} tokens; the request "
            f"asks for {prompt_tokens} prompt + {max_tokens} completion tokens",
            param="max_tokens" if prompt_tokens == 0 else "messages",
            code="context_length_exceeded",
        )


def collection_name(services: Services, body: ChatCompletionRequest) -> str:
    """``collection`` if given, else ``model``; the generation model's own id means the
    default collection."""
    if body.collection:
        return body.collection
    if body.model == services.model_id:
        return services.settings.storage.default_collection
    return body.model


async def prepare_answer(
    services: Services,
    body: ChatCompletionRequest,
    conversation: Conversation,
    opened: OpenCollection,
    options: SamplingOptions,
    started: float,
) -> PreparedAnswer:
    settings = services.settings
    if body.rerank and services.registry.reranker is None:
        raise ApiError(
            400,
            f"reranking is unavailable: reranker model {settings.rerank.model!r} is not "
            "installed (see `ragline reranker train`)",
            param="rerank",
        )
    request = RetrievalRequest(
        conversation.question,
        top_k=body.top_k,
        rerank=body.rerank,
        # Compression only feeds the "compressed" prompt layout; skip it otherwise.
        compress=None if settings.generation.context == "compressed" else False,
    )
    retrieving = time.perf_counter()
    retrieval = await asyncio.to_thread(opened.retrieve, request, conversation.previous)
    observe_retrieval(services, retrieval, time.perf_counter() - retrieving)
    assert options.max_tokens is not None
    try:
        prompt = await asyncio.to_thread(
            services.generator.build_prompt,
            conversation.question,
            retrieval,
            conversation.history,
            options.max_tokens,
        )
    except PromptTooLongError as exc:
        raise ApiError(400, str(exc), param="messages", code="context_length_exceeded") from None
    return PreparedAnswer(
        conversation.question, prompt, retrieval, request, opened, options, started
    )


def observe_retrieval(services: Services, retrieval: RetrievalResult, seconds: float) -> None:
    stage = services.metrics.stage
    stage.labels("retrieve").observe(seconds)
    for name in ("rerank", "compress"):
        spent = sum(v for k, v in retrieval.timings.stages.items() if k.endswith(name))
        if spent:
            stage.labels(name).observe(spent / 1e3)


async def stream_answer(
    services: Services, prepared: PreparedAnswer, state: AnswerState
) -> AsyncIterator[AnswerDelta]:
    """The engine's deltas, recording text, citations, stats and metrics into ``state``;
    when the answer is complete, the next turn's context is prefetched."""
    metrics = services.metrics
    first = True
    try:
        async for delta in services.generator.stream(prepared.prompt, prepared.options):
            if first and delta.text:
                first = False
                metrics.ttft.observe(time.perf_counter() - prepared.started)
            state.text.append(delta.text)
            if delta.finished:
                state.cited = delta.cited
                state.attributed = delta.attributed
                state.stats = delta.stats or GenerationStats()
            yield delta
    except (asyncio.CancelledError, GeneratorExit):
        metrics.disconnects.inc()
        raise
    stats = state.stats
    metrics.stage.labels("prefill").observe(stats.ttft_s)
    metrics.observe_generation(
        stats.prompt_tokens, stats.cached_prompt_tokens, stats.output_tokens, stats.tpot_s
    )
    if services.settings.cache.prefetch:
        prepared.opened.prefetch(prepared.question, "".join(state.text), prepared.request)


def usage(stats: GenerationStats) -> Usage:
    return Usage(
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.output_tokens,
        total_tokens=stats.prompt_tokens + stats.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=stats.cached_prompt_tokens),
    )


def sources_out(state: AnswerState, sources: list[Source], snippet_chars: int) -> list[SourceOut]:
    numbers = {s.number for s in state.cited}
    attributed = {s.number for s in state.attributed}
    return [
        SourceOut(
            number=s.number,
            source=PurePath(s.source).name or s.source,
            page=s.page,
            headings=list(s.headings),
            chunk_id=s.chunk_id,
            score=s.score,
            text=s.text[:snippet_chars],
            cited=s.number in numbers,
            attributed=s.number in attributed,
        )
        for s in sources
    ]
