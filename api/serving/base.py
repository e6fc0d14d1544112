"""What every generating endpoint shares: validation before admission, the admission
slot handed to the response, response ids, SSE framing, the stream loop with its TTFT,
disconnect and usage metrics, and in-band errors once the stream has begun.

An endpoint subclasses ``ServingBase`` and supplies ``check`` (everything that can refuse
the request with a status code, before a slot is taken), ``prepare`` (work done holding
the slot, such as retrieval), ``events`` (its SSE chunks) and ``complete`` (its JSON body).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse
from starlette.types import Receive, Scope, Send

from ragline.api.admission import Lease
from ragline.api.auth import Principal
from ragline.api.disconnect import unless_disconnected
from ragline.api.errors import ApiError, error_body
from ragline.api.schemas import PromptTokensDetails, SamplingFields, Usage
from ragline.api.services import Services
from ragline.generate.engine import InvalidSamplingOptions
from ragline.generate.types import GenerationStats, SamplingOptions

log = logging.getLogger(__name__)

BodyT = TypeVar("BodyT", bound=SamplingFields)
CheckedT = TypeVar("CheckedT")
PreparedT = TypeVar("PreparedT")
DeltaT = TypeVar("DeltaT", bound="Delta")

DONE = "[DONE]"


class Delta(Protocol):
    """A streamed piece; the last one carries the generation's stats."""

    @property
    def text(self) -> str: ...

    @property
    def stats(self) -> GenerationStats | None: ...


@dataclass(slots=True, frozen=True)
class ResponseIds:
    id: str
    created: int
    model: str


def sse(payload: dict[str, Any] | str) -> dict[str, str]:
    return {"data": payload if isinstance(payload, str) else json.dumps(payload)}


class LeasedEventSource(EventSourceResponse):
    """An SSE response that gives its admission slot back however it ends: finished,
    failed, or the client gone (sse-starlette cancels the stream on disconnect)."""

    def __init__(self, content: Any, lease: Lease) -> None:
        super().__init__(content, sep="\n", ping=15)
        self.lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.lease.release()


def sampling_options(
    services: Services, body: SamplingFields, default_max_tokens: int
) -> SamplingOptions:
    """The request's sampling options, or 400 where the engine would refuse them."""
    options = SamplingOptions(
        max_tokens=body.max_completion_tokens or body.max_tokens or default_max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        stop=body.stop_list,
    )
    try:
        services.engine.check_options(options)
    except InvalidSamplingOptions as exc:
        raise ApiError(400, f"invalid sampling options: {exc}", code="invalid_value") from None
    return options


def check_max_tokens(max_tokens: int, max_model_len: int, prompt_tokens: int = 0) -> None:
    if prompt_tokens + max_tokens > max_model_len:
        raise ApiError(
            400,
            f"this model's maximum context length is {max_model_len} tokens; the request "
            f"asks for {prompt_tokens} prompt + {max_tokens} completion tokens",
            param="max_tokens" if prompt_tokens == 0 else "messages",
            code="context_length_exceeded",
        )


def usage(stats: GenerationStats) -> Usage:
    return Usage(
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.output_tokens,
        total_tokens=stats.prompt_tokens + stats.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=stats.cached_prompt_tokens),
    )


class ServingBase(ABC, Generic[BodyT, CheckedT, PreparedT]):
    route: ClassVar[str]
    id_prefix: ClassVar[str]  # "chatcmpl", "cmpl"
    chunk_object: ClassVar[str]  # the "object" of each streamed chunk

    def __init__(self, services: Services) -> None:
        self.services = services
        self.metrics = services.metrics

    # -- what an endpoint supplies -------------------------------------------------------

    @abstractmethod
    async def check(self, body: BodyT, principal: Principal) -> CheckedT:
        """Validate the request (status codes, no slot held yet)."""

    @abstractmethod
    async def prepare(self, checked: CheckedT, started: float) -> PreparedT:
        """Work done holding the admission slot before generating (may still refuse)."""

    @abstractmethod
    def events(
        self, prepared: PreparedT, body: BodyT, ids: ResponseIds
    ) -> AsyncIterator[dict[str, str]]:
        """The endpoint's SSE chunks, without the closing [DONE]."""

    @abstractmethod
    async def complete(self, prepared: PreparedT, body: BodyT, ids: ResponseIds) -> BaseModel:
        """The whole, non-streamed response."""

    # -- the shared request flow ---------------------------------------------------------

    async def serve(
        self, request: Request, body: BodyT, principal: Principal
    ) -> Response | BaseModel:
        started = time.perf_counter()
        checked = await self.check(body, principal)
        lease = await self.services.admit()
        handed_over = False
        try:
            prepared = await self.prepare(checked, started)
            ids = ResponseIds(
                f"{self.id_prefix}-{uuid.uuid4().hex[:24]}", int(time.time()), body.model
            )
            if body.stream:
                response = LeasedEventSource(self._stream(prepared, body, ids), lease)
                handed_over = True  # the response gives the slot back when it ends
                return response
            return await unless_disconnected(request, self.complete(prepared, body, ids))
        finally:
            if not handed_over:
                lease.release()

    async def _stream(
        self, prepared: PreparedT, body: BodyT, ids: ResponseIds
    ) -> AsyncIterator[dict[str, str]]:
        try:
            async for event in self.events(prepared, body, ids):
                yield event
        except Exception as exc:  # the status line is sent: report in-band, as OpenAI does
            log.exception("%s failed mid-stream", self.route)
            self.metrics.errors.labels(self.route, "stream").inc()
            yield sse(error_body(f"generation failed: {type(exc).__name__}", 500))
        yield sse(DONE)

    def chunk(
        self, ids: ResponseIds, choices: list[dict[str, Any]], **extra: Any
    ) -> dict[str, str]:
        return sse(
            {
                "id": ids.id,
                "object": self.chunk_object,
                "created": ids.created,
                "model": ids.model,
                "choices": choices,
                **extra,
            }
        )

    async def generate(
        self, deltas: AsyncIterator[DeltaT], started: float
    ) -> AsyncIterator[DeltaT]:
        """Pass the engine's deltas through, recording time to first text, client
        disconnects and, once finished, prefill time and token counts."""
        first = True
        final: GenerationStats | None = None
        try:
            async for delta in deltas:
                if first and delta.text:
                    first = False
                    self.metrics.ttft.observe(time.perf_counter() - started)
                if delta.stats is not None:
                    final = delta.stats
                yield delta
        except (asyncio.CancelledError, GeneratorExit):
            self.metrics.disconnects.inc()
            raise
        if final is not None:
            self.metrics.stage.labels("prefill").observe(final.ttft_s)
            self.metrics.observe_generation(
                final.prompt_tokens, final.cached_prompt_tokens, final.output_tokens, final.tpot_s
            )
