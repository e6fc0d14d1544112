"""Typed records at the generation boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: Role
    content: str


@dataclass(slots=True)
class SamplingOptions:
    """Per-request sampling; ``None`` fields take the configured defaults."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    repetition_penalty: float | None = None
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks)


@dataclass(slots=True)
class GenerationStats:
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens served from vLLM's prefix cache
    output_tokens: int = 0
    ttft_s: float = 0.0  # submit -> first token
    tpot_s: float = 0.0  # mean time per output token after the first
    total_s: float = 0.0
    finish_reason: FinishReason | None = None


@dataclass(slots=True)
class TextDelta:
    """One streamed piece of an answer; the last one carries the finish reason and stats."""

    text: str
    token_count: int
    finished: bool = False
    stats: GenerationStats | None = None
