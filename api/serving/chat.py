"""POST /v1/chat/completions as a grounded answer: conversation → retrieval → prompt →
stream, with the cited sources.

Everything that can reject a request (bad conversation, unknown collection, prompt too
long, server full) happens before the first byte, so it gets a proper status code; once
streaming has begun only the engine can fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import PurePath
from typing import ClassVar

from ragline.api.auth import Principal
from ragline.api.errors import ApiError
from ragline.api.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    SourceOut,
)
from ragline.api.services import Services
from ragline.api.serving.base import (
    ResponseIds,
    ServingBase,
    check_max_tokens,
    sampling_options,
    usage,
)
from ragline.generate.prompt import PromptTooLongError, RagPrompt, Source
from ragline.generate.types import ChatTurn, GenerationStats, SamplingOptions
from ragline.retrieve.types import RetrievalRequest, RetrievalResult
from ragline.service.registry import OpenCollection


@dataclass(slots=True)
class Conversation:
    question: str
    history: list[ChatTurn]  # the turns before the question

    def turns(self) -> list[tuple[str, str]]:
        """(role, text) pairs, for retrieval with the conversation."""
        return [(turn.role, turn.content) for turn in self.history]


@dataclass(slots=True)
class CheckedChat:
    body: ChatCompletionRequest
    conversation: Conversation
    opened: OpenCollection
    options: SamplingOptions


@dataclass(slots=True)
class PreparedAnswer:
    question: str
    prompt: RagPrompt
    retrieval: RetrievalResult
    request: RetrievalRequest
    opened: OpenCollection
    options: SamplingOptions
    started: float  # perf_counter when the HTTP request arrived
    abstain: bool = False  # nothing relevant retrieved: say so, generate nothing


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
    return Conversation(question, history)


def collection_name(services: Services, body: ChatCompletionRequest) -> str:
    """``collection`` if given, else ``model``; the generation model's own id means the
    default collection."""
    if body.collection:
        return body.collection
    if body.model == services.model_id:
        return services.settings.storage.default_collection
    return body.model


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


class ServingChat(ServingBase[ChatCompletionRequest, CheckedChat, PreparedAnswer]):
    route: ClassVar[str] = "/v1/chat/completions"
    id_prefix: ClassVar[str] = "chatcmpl"
    chunk_object: ClassVar[str] = "chat.completion.chunk"

    async def check(self, body: ChatCompletionRequest, principal: Principal) -> CheckedChat:
        services = self.services
        conversation = parse_conversation(body.messages)
        options = sampling_options(services, body, services.settings.generation.max_tokens)
        assert options.max_tokens is not None
        check_max_tokens(options.max_tokens, services.engine.max_model_len)
        if body.rerank and not services.components.reranker_available:
            raise ApiError(
                400,
                f"reranking is unavailable: reranker model {services.settings.rerank.model!r} "
                "is not installed (see `ragline reranker train`)",
                param="rerank",
            )
        opened = services.collection(collection_name(services, body), principal)
        return CheckedChat(body, conversation, opened, options)

    async def prepare(self, checked: CheckedChat, started: float) -> PreparedAnswer:
        """Retrieval and the prompt, holding the admission slot."""
        services, conversation = self.services, checked.conversation
        request = RetrievalRequest(
            conversation.question,
            top_k=checked.body.top_k,
            rerank=checked.body.rerank,
            # Compression only feeds the "compressed" prompt layout; skip it otherwise.
            compress=None if services.settings.generation.context == "compressed" else False,
        )
        retrieving = time.perf_counter()
        retrieval = await asyncio.to_thread(checked.opened.retrieve, request, conversation.turns())
        self.metrics.observe_retrieval(retrieval.timings.stages, time.perf_counter() - retrieving)
        abstain = await self._nothing_relevant(checked.opened, retrieval)
        assert checked.options.max_tokens is not None
        try:
            # Abstaining, the prompt is still built (without sources): a conversation too
            # long for the model is the client's error either way.
            prompt = await asyncio.to_thread(
                services.generator.build_prompt,
                conversation.question,
                replace(retrieval, passages=[]) if abstain else retrieval,
                conversation.history,
                checked.options.max_tokens,
            )
        except PromptTooLongError as exc:
            param = "max_tokens" if exc.answer_too_long else "messages"
            raise ApiError(400, str(exc), param=param, code="context_length_exceeded") from None
        return PreparedAnswer(
            conversation.question,
            prompt,
            retrieval,
            request,
            checked.opened,
            checked.options,
            started,
            abstain,
        )

    async def _nothing_relevant(self, opened: OpenCollection, retrieval: RetrievalResult) -> bool:
        """No passage reaches ``generation.abstain_below`` (cosine with the question)."""
        threshold = self.services.settings.generation.abstain_below
        if threshold <= 0:
            return False
        if not retrieval.passages:
            return True
        return await asyncio.to_thread(opened.relevance, retrieval) < threshold

    async def answer(self, prepared: PreparedAnswer, state: AnswerState) -> AsyncIterator[str]:
        """The answer's text pieces, recording citations and stats into ``state``."""
        if prepared.abstain:
            message = self.services.settings.generation.abstain_message
            state.text.append(message)
            state.stats = GenerationStats(finish_reason="stop")
            yield message
            return
        deltas = self.services.generator.stream(prepared.prompt, prepared.options)
        async for delta in self.generate(deltas, prepared.started):
            state.text.append(delta.text)
            if delta.finished:
                state.cited = delta.cited
                state.attributed = delta.attributed
                state.stats = delta.stats or GenerationStats()
            yield delta.text

    def _sources(self, state: AnswerState, prepared: PreparedAnswer) -> list[SourceOut]:
        snippet_chars = self.services.settings.api.snippet_chars
        return sources_out(state, prepared.prompt.sources, snippet_chars)

    async def complete(
        self, prepared: PreparedAnswer, body: ChatCompletionRequest, ids: ResponseIds
    ) -> ChatCompletion:
        state = AnswerState()
        async for _ in self.answer(prepared, state):
            pass
        return ChatCompletion(
            id=ids.id,
            created=ids.created,
            model=ids.model,
            choices=[
                ChatChoice(
                    message=AssistantMessage(content="".join(state.text)),
                    finish_reason=state.stats.finish_reason or "stop",
                )
            ],
            usage=usage(state.stats),
            sources=self._sources(state, prepared),
        )

    async def events(
        self, prepared: PreparedAnswer, body: ChatCompletionRequest, ids: ResponseIds
    ) -> AsyncIterator[dict[str, str]]:
        def delta(content: dict[str, str], finish_reason: str | None = None) -> dict[str, str]:
            return self.chunk(ids, [{"index": 0, "delta": content, "finish_reason": finish_reason}])

        state = AnswerState()
        yield delta({"role": "assistant", "content": ""})
        async for text in self.answer(prepared, state):
            if text:
                yield delta({"content": text})
        yield delta({}, state.stats.finish_reason or "stop")
        # OpenAI's usage chunk has no choices; ragline's sources ride on the same chunk.
        yield self.chunk(
            ids,
            [],
            usage=usage(state.stats).model_dump() if body.include_usage else None,
            sources=[s.model_dump() for s in self._sources(state, prepared)],
        )
