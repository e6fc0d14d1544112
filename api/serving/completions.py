"""POST /v1/completions: plain text completion from the engine, no retrieval."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

from ragline.api.auth import Principal
from ragline.api.errors import ApiError
from ragline.api.schemas import Completion, CompletionChoice, CompletionRequest
from ragline.api.serving.base import (
    ResponseIds,
    ServingBase,
    check_max_tokens,
    sampling_options,
    usage,
)
from ragline.generate.types import GenerationStats, SamplingOptions

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions


@dataclass(slots=True)
class PreparedCompletion:
    """The tokenized prompt; filled with the text and stats as they stream."""

    token_ids: list[int]
    options: SamplingOptions
    started: float
    stats: GenerationStats | None = None

    @property
    def final(self) -> GenerationStats:
        return self.stats or GenerationStats(prompt_tokens=len(self.token_ids))


class ServingCompletion(ServingBase[CompletionRequest, PreparedCompletion, PreparedCompletion]):
    route: ClassVar[str] = "/v1/completions"
    id_prefix: ClassVar[str] = "cmpl"
    chunk_object: ClassVar[str] = "text_completion"

    async def check(self, body: CompletionRequest, principal: Principal) -> PreparedCompletion:
        services = self.services
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1 or not prompts[0]:
            raise ApiError(400, "send exactly one non-empty prompt", param="prompt")
        if body.model != services.model_id:  # a collection's name is a model id too
            services.collection(body.model, principal)
        options = sampling_options(services, body, DEFAULT_MAX_TOKENS)
        assert options.max_tokens is not None
        token_ids: list[int] = await asyncio.to_thread(services.engine.tokenizer.encode, prompts[0])
        check_max_tokens(options.max_tokens, services.engine.max_model_len, len(token_ids))
        return PreparedCompletion(token_ids, options, started=0.0)

    async def prepare(self, checked: PreparedCompletion, started: float) -> PreparedCompletion:
        checked.started = started
        return checked

    async def text(self, prepared: PreparedCompletion) -> AsyncIterator[str]:
        deltas = self.services.engine.stream(prepared.token_ids, prepared.options)
        async for delta in self.generate(deltas, prepared.started):
            if delta.stats is not None:
                prepared.stats = delta.stats
            yield delta.text

    async def complete(
        self, prepared: PreparedCompletion, body: CompletionRequest, ids: ResponseIds
    ) -> Completion:
        text = "".join([piece async for piece in self.text(prepared)])
        final = prepared.final
        return Completion(
            id=ids.id,
            created=ids.created,
            model=ids.model,
            choices=[CompletionChoice(text=text, finish_reason=final.finish_reason or "stop")],
            usage=usage(final),
        )

    async def events(
        self, prepared: PreparedCompletion, body: CompletionRequest, ids: ResponseIds
    ) -> AsyncIterator[dict[str, str]]:
        def choice(text: str, finish_reason: str | None = None) -> dict[str, str]:
            return self.chunk(
                ids, [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}]
            )

        async for piece in self.text(prepared):
            if piece:
                yield choice(piece)
        final = prepared.final
        yield choice("", final.finish_reason or "stop")
        if body.include_usage:
            yield self.chunk(ids, [], usage=usage(final).model_dump())
