"""Bounded admission for generation: ``max_active`` at once, ``max_queued`` waiting.

A request beyond both is refused at once (429 with Retry-After) instead of piling up
latency for everyone; a waiting request gives up after ``queue_timeout_s``. Waiters are
served first come, first served.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Overloaded(Exception):
    pass


class Lease:
    """One admitted generation; ``release`` is idempotent so every exit path may call it."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release()


class Admission:
    def __init__(self, max_active: int, max_queued: int, queue_timeout_s: float) -> None:
        self.max_active = max_active
        self.max_queued = max_queued
        self.queue_timeout_s = queue_timeout_s
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.rejected = 0

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> Lease:
        if self.active < self.max_active and not self._waiters:
            self.active += 1
            return Lease(self)
        if len(self._waiters) >= self.max_queued:
            self.rejected += 1
            raise Overloaded(f"{self.active} generating and {len(self._waiters)} waiting")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_timeout_s)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                self.rejected += 1
                raise Overloaded(f"waited {self.queue_timeout_s:.0f}s for a slot") from None
            raise
        return Lease(self)  # the releasing request handed its slot to us; active unchanged

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.active -= 1
