"""connections.max.idle.ms: close a connection that has read nothing and sent nothing for that long.

Like Kafka's Selector (its idle-expiry manager is touched whenever a channel reads or writes), the
clock restarts on every byte received and every chunk sent, so it also ends a connection whose
client sent half a frame and stopped, or stopped reading while a response is being sent to it.
Time spent waiting on the broker itself (a request in its handler, a body waiting for room in
queued.max.request.bytes) does not count: the client is not the one idle then.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator

import trio

#: send_all in pieces of this size, so a slow-but-reading client keeps its connection alive.
SEND_CHUNK = 1 << 20


class IdleTimer:
    """A cancel scope whose deadline moves `idle_s` past the last activity; run the connection in
    `with timer.scope:` and check `timer.expired` after it."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.scope = trio.CancelScope()
        self._paused = 0
        self.touch()

    def touch(self) -> None:
        if not self._paused:
            self.scope.deadline = trio.current_time() + self.idle_s

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The broker, not the client, is busy inside: no idle deadline until it ends."""
        self._paused += 1
        self.scope.deadline = math.inf
        try:
            yield
        finally:
            self._paused -= 1
            self.touch()

    @property
    def expired(self) -> bool:
        return self.scope.cancelled_caught


class ActivityStream(trio.abc.HalfCloseableStream):
    """Wraps a stream so every byte received and every chunk sent touches the idle timer; other
    attributes (e.g. `socket`, `setsockopt`) are the wrapped stream's."""

    def __init__(self, stream: Any, timer: IdleTimer) -> None:
        self._stream = stream
        self._timer = timer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        data = await self._stream.receive_some(max_bytes)
        self._timer.touch()
        return data

    def note_progress(self) -> None:
        """Bytes left by another path (sendfile on the socket): that is activity too."""
        self._timer.touch()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as view, view.cast("B") as flat:
            if not flat:
                await self._stream.send_all(flat)
            for start in range(0, len(flat), SEND_CHUNK):
                await self._stream.send_all(flat[start:start + SEND_CHUNK])
                self._timer.touch()

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()
