"""Grounded answers: retrieved passages -> cache-aware prompt -> streamed text -> citations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ragline.generate.citations import attribute, cited_numbers
from ragline.generate.engine import GenerationEngine
from ragline.generate.prompt import (
    Ordering,
    PromptBuilder,
    PromptTooLongError,
    RagPrompt,
    Source,
)
from ragline.generate.types import ChatTurn, GenerationStats, SamplingOptions
from ragline.retrieve.types import RetrievalResult
from ragline.settings import GenerationSettings


@dataclass(slots=True)
class AnswerDelta:
    """A streamed piece of an answer; the final one carries citations and stats."""

    text: str
    finished: bool = False
    cited: list[Source] = field(default_factory=list)  # written as [n] by the model
    attributed: list[Source] = field(default_factory=list)  # matched when it cited none
    stats: GenerationStats | None = None


def cited_sources(answer: str, sources: Sequence[Source]) -> list[Source]:
    by_number = {s.number: s for s in sources}
    return [by_number[n] for n in cited_numbers(answer, by_number)]


class RagGenerator:
    def __init__(
        self,
        engine: GenerationEngine,
        settings: GenerationSettings,
        ordering: Ordering = "canonical",
        encode: Callable[[list[str]], np.ndarray] | None = None,
    ) -> None:
        """``encode`` (the embedding model) enables attribution of uncited answers."""
        self.engine = engine
        self.settings = settings
        self.encode = encode
        self.builder = PromptBuilder(engine.tokenizer, settings.system_prompt, ordering)

    def build_prompt(
        self,
        question: str,
        retrieval: RetrievalResult,
        history: Sequence[ChatTurn] = (),
        max_tokens: int | None = None,
    ) -> RagPrompt:
        """Whole passages by default (identical across questions, so cacheable); the
        compressed context when ``generation.context`` is ``compressed``."""
        snippets = None
        if self.settings.context == "compressed" and retrieval.context is not None:
            context = retrieval.context
            snippets = dict(zip(context.passages, context.snippets, strict=True))
        answer_room = max_tokens if max_tokens is not None else self.settings.max_tokens
        window = self.engine.max_model_len
        try:
            return self.builder.build(
                question,
                retrieval.passages,
                history,
                snippets=snippets,
                max_prompt_tokens=window - answer_room,
            )
        except PromptTooLongError as exc:  # say what the limit is made of
            raise PromptTooLongError(exc.tokens, exc.limit, answer_room, window) from None

    async def attribute(self, answer: str, sources: Sequence[Source]) -> list[Source]:
        threshold = self.settings.attribution_threshold
        if self.encode is None or threshold <= 0 or not sources:
            return []
        texts = [s.text for s in sources]
        picked = await asyncio.to_thread(attribute, answer, texts, self.encode, threshold)
        return [sources[i] for i in picked]

    async def stream(
        self, prompt: RagPrompt, options: SamplingOptions | None = None
    ) -> AsyncIterator[AnswerDelta]:
        pieces: list[str] = []
        async for delta in self.engine.stream(prompt.token_ids, options):
            pieces.append(delta.text)
            if delta.finished:
                answer = "".join(pieces)
                cited = cited_sources(answer, prompt.sources)
                attributed = [] if cited else await self.attribute(answer, prompt.sources)
                yield AnswerDelta(
                    delta.text,
                    finished=True,
                    cited=cited,
                    attributed=attributed,
                    stats=delta.stats,
                )
            elif delta.text:
                yield AnswerDelta(delta.text)
