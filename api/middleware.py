"""Pure ASGI middleware (no buffering, so streamed answers pass through untouched)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragline.api.errors import ApiError, error_body
from ragline.api.metrics import Metrics


class BodyLimit:
    """413 for a request body over its limit: at once when Content-Length says so, or as
    soon as a streamed body crosses it (nothing larger is ever read). 408 for a body that
    stops arriving: no part of it for ``idle_timeout_s`` (a client that promises a body
    and sends none would otherwise hold its connection and a worker forever)."""

    def __init__(
        self, app: ASGIApp, limit: Callable[[Scope], int], idle_timeout_s: float = 30.0
    ) -> None:
        self.app = app
        self.limit = limit
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        message = f"request body too large (limit {limit / 2**20:.1f} MiB)"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(send, 413, message, "request_too_large")
            return
        received = 0
        complete = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # only the disconnect is left to wait for: no time limit
                return await receive()
            try:
                incoming = await asyncio.wait_for(receive(), self.idle_timeout_s)
            except TimeoutError:
                raise ApiError(
                    408,
                    f"the request body stopped arriving (nothing for {self.idle_timeout_s:g} s)",
                    code="request_timeout",
                    headers={"Connection": "close"},
                ) from None
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                complete = not incoming.get("more_body", False)
                if received > limit:
                    raise ApiError(413, message, code="request_too_large")
            return incoming

        await self.app(scope, limited_receive, send)


class RequestMetrics:
    """Counts requests by route template and status and times them to the last byte."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            route = scope.get("route")
            # Route templates, not raw paths: bounded label values.
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, scope["method"], str(status)).inc()
            if status >= 400:
                self.metrics.errors.labels(path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)


async def _send_error(send: Send, status: int, message: str, code: str) -> None:
    body = json.dumps(error_body(message, status, code=code)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
