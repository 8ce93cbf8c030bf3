"""queued.max.request.bytes: one budget for request bodies held in memory across all connections.

Like Kafka's broker-side SimpleMemoryPool (non-strict mode), a request is admitted while any of
the budget is left, so the pool may overshoot by at most one frame; that way a frame larger than
the whole pool is still read once the pool has room. Waiters are served first come, first served,
so a large frame is not starved by a stream of small ones.
"""

from __future__ import annotations

import collections
from contextlib import asynccontextmanager
from typing import AsyncIterator

import trio


class MemoryPool:
    """`capacity` bytes shared by all connections; a capacity below 0 means unbounded (no waits)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: collections.deque[trio.Event] = collections.deque()
        self._woken = 0  # waiters woken that have not yet taken their bytes

    @property
    def bounded(self) -> bool:
        return self.capacity >= 0

    def _has_room(self) -> bool:
        return self.used < self.capacity or self.used == 0

    async def acquire(self, size: int) -> None:
        """Wait for room, then take `size` bytes (FIFO among waiters)."""
        if not self.bounded:
            return
        if self._waiters or self._woken or not self._has_room():
            event = trio.Event()
            self._waiters.append(event)
            try:
                await event.wait()
            except BaseException:
                if event.is_set():  # woken but not taking the room: pass the turn on
                    self._woken -= 1
                    self._wake()
                else:
                    self._waiters.remove(event)
                raise
            self._woken -= 1
        self.used += size
        self._wake()

    def release(self, size: int) -> None:
        if not self.bounded:
            return
        self.used -= size
        self._wake()

    def _wake(self) -> None:
        """Hand the turn to the first waiter when there is room and no one else holds the turn."""
        if self._waiters and not self._woken and self._has_room():
            self._woken += 1
            self._waiters.popleft().set()

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        """Hold `size` bytes for the body of the `async with` (released however it ends)."""
        await self.acquire(size)
        try:
            yield
        finally:
            self.release(size)
