"""Prompt layout that lets vLLM's prefix cache reuse retrieved context.

The prompt is: system instructions, then the numbered sources, then the conversation,
then the question. Sources are put in a canonical order (document, then position in the
document), not by score, so two questions that retrieve the same passages share the
whole prefix up to the conversation and the second prefill is mostly a cache hit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal, Protocol

from ragline.generate.types import ChatTurn
from ragline.retrieve.types import Passage

Ordering = Literal["canonical", "score"]


class ChatTokenizer(Protocol):
    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...

    def encode(self, text: str, **kwargs: Any) -> list[int]: ...


@dataclass(frozen=True, slots=True)
class Source:
    """A numbered source as the model saw it; answers cite it as ``[number]``."""

    number: int
    chunk_id: int
    source: str
    position: int
    text: str
    page: int | None = None
    headings: tuple[str, ...] = ()
    score: float = 0.0

    def label(self) -> str:
        parts = [PurePath(self.source).name or self.source]
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.headings:
            parts.append(" > ".join(self.headings))
        return ", ".join(parts)


@dataclass(slots=True)
class RagPrompt:
    text: str  # the rendered prompt, chat template applied
    token_ids: list[int]
    sources: list[Source]
    context_chars: int  # length of the sources block, for reporting

    @property
    def prompt_tokens(self) -> int:
        return len(self.token_ids)


def order_passages(passages: Sequence[Passage], ordering: Ordering) -> list[Passage]:
    if ordering == "score":
        return sorted(passages, key=lambda p: -p.score)
    return sorted(passages, key=lambda p: (p.source, p.position, p.chunk_id))


def number_sources(
    passages: Sequence[Passage],
    ordering: Ordering = "canonical",
    snippets: Mapping[int, str] | None = None,
) -> list[Source]:
    """Number passages for citation; ``snippets`` (chunk id -> text) replaces their text."""
    sources: list[Source] = []
    for passage in order_passages(passages, ordering):
        text = passage.text if snippets is None else snippets.get(passage.chunk_id)
        if not text:
            continue  # compression dropped every sentence of it
        sources.append(
            Source(
                number=len(sources) + 1,
                chunk_id=passage.chunk_id,
                source=passage.source,
                position=passage.position,
                text=text.strip(),
                page=passage.page,
                headings=tuple(passage.headings),
                score=passage.score,
            )
        )
    return sources


def render_sources(sources: Sequence[Source]) -> str:
    if not sources:
        return "Sources: none were found for this question."
    blocks = [f"[{s.number}] ({s.label()})\n{s.text}" for s in sources]
    return "Sources:\n\n" + "\n\n".join(blocks)


class PromptBuilder:
    """Renders system + sources + conversation + question with the model's chat template."""

    def __init__(
        self,
        tokenizer: ChatTokenizer,
        system_prompt: str,
        ordering: Ordering = "canonical",
    ) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.ordering = ordering

    def build(
        self,
        question: str,
        passages: Sequence[Passage],
        history: Sequence[ChatTurn] = (),
        snippets: Mapping[int, str] | None = None,
        max_prompt_tokens: int | None = None,
    ) -> RagPrompt:
        """Build the prompt; over ``max_prompt_tokens``, the lowest-scored sources go first."""
        sources = number_sources(passages, self.ordering, snippets)
        while True:
            prompt = self._render(question, sources, history)
            if max_prompt_tokens is None or prompt.prompt_tokens <= max_prompt_tokens:
                return prompt
            if not sources:
                raise PromptTooLongError(prompt.prompt_tokens, max_prompt_tokens)
            weakest = min(sources, key=lambda s: s.score)
            kept = [p for p in passages if p.chunk_id != weakest.chunk_id]
            passages = kept
            sources = number_sources(kept, self.ordering, snippets)

    def _render(
        self, question: str, sources: list[Source], history: Sequence[ChatTurn]
    ) -> RagPrompt:
        context = render_sources(sources)
        messages = [{"role": "system", "content": f"{self.system_prompt}\n\n{context}"}]
        messages += [
            {"role": turn.role, "content": turn.content}
            for turn in history
            if turn.role != "system"
        ]
        messages.append({"role": "user", "content": question})
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        token_ids = list(self.tokenizer.encode(str(text), add_special_tokens=False))
        return RagPrompt(
            text=str(text), token_ids=token_ids, sources=sources, context_chars=len(context)
        )


class PromptTooLongError(ValueError):
    """The prompt without any source is over ``limit`` tokens; ``answer_tokens`` (when
    known) is the room kept for the answer out of a ``context_tokens`` window."""

    def __init__(
        self, tokens: int, limit: int, answer_tokens: int | None = None, context_tokens: int = 0
    ) -> None:
        if answer_tokens is None:
            message = f"the conversation alone is {tokens} tokens, over the limit of {limit}"
        else:
            message = (
                f"the conversation alone is {tokens} tokens; the model's context is "
                f"{context_tokens} tokens and max_tokens={answer_tokens} keeps {answer_tokens} "
                f"of them for the answer, leaving {max(limit, 0)}: lower max_tokens or "
                "shorten the conversation"
            )
        super().__init__(message)
        self.tokens = tokens
        self.limit = limit
        self.answer_tokens = answer_tokens
        self.context_tokens = context_tokens

    @property
    def answer_too_long(self) -> bool:
        """The conversation would fit with a shorter answer: max_tokens is to blame."""
        return self.answer_tokens is not None and self.tokens < self.context_tokens
