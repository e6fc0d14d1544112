"""Shared route plumbing: documented error responses and the leased SSE response."""

from __future__ import annotations

import json
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.types import Receive, Scope, Send

from api.admission import Lease

_ERROR_SCHEMA: dict[str, Any] = {
    "description": "OpenAI-style error",
    "content": {
        "application/json": {
            "example": {
                "error": {
                    "message": "...",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            }
        }
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: _ERROR_SCHEMA for status in (400, 401, 404, 413, 429)
}


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
