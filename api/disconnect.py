"""Cancelling work whose client has gone away.

Streamed responses are cancelled by the SSE response itself; a plain JSON request would
otherwise keep generating for nobody until ``max_tokens``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from ragline.api.errors import ApiError

T = TypeVar("T")
POLL_S = 0.25


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; cancel it (aborting its generation) if the client disconnects."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                # Nobody reads this response; 499 is what the access log should show.
                raise ApiError(499, "client closed the request", code="client_closed")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
