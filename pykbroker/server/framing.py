"""Reading size-prefixed frames from a byte stream, with the size limit checked before the body."""

from __future__ import annotations

import struct

import trio

_SIZE = struct.Struct(">i")
_CHUNK = 65536
#: Largest single read: a frame's declared size does not make us ask the socket for 100 MB at once.
_MAX_READ = 1 << 20


class FrameTooLarge(Exception):
    """A frame whose declared size exceeds socket.request.max.bytes (or is negative)."""


class FrameReader:
    """Buffers a trio stream and yields whole frames (without the 4-byte size prefix).

    Reading is in two steps, so the caller can wait for memory between them: `read_size` reads
    the 4-byte prefix (the buffer holds at most one read of 64 KiB beyond it), `read_body` the rest.
    A frame that arrives alone in the buffer is handed over without copying; the records inside
    a produce request then stay views of the bytes read from the socket.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, max_bytes: int) -> None:
        self._stream = stream
        self._max_bytes = max_bytes
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not yet handed out."""
        return len(self._buf)

    async def _fill(self, needed: int) -> bool:
        while len(self._buf) < needed:
            want = min(max(_CHUNK, needed - len(self._buf)), _MAX_READ)
            chunk = await self._stream.receive_some(want)
            if not chunk:
                return False
            self._buf += chunk
        return True

    async def read_size(self) -> int | None:
        """The next frame's declared body size, or None at a clean end of stream (EOF between frames)."""
        if not await self._fill(4):
            if self._buf:
                raise EOFError(f"connection closed inside a frame size ({len(self._buf)} bytes)")
            return None
        size = _SIZE.unpack_from(self._buf, 0)[0]
        if size < 0 or size > self._max_bytes:
            raise FrameTooLarge(f"frame of {size} bytes exceeds socket.request.max.bytes={self._max_bytes}")
        return size

    async def read_body(self, size: int) -> memoryview:
        """The body of the frame whose size `read_size` returned."""
        end = 4 + size
        if not await self._fill(end):
            raise EOFError(f"connection closed inside a frame ({len(self._buf)} of {end} bytes)")
        if len(self._buf) == end:
            frame, self._buf = self._buf, bytearray()
            return memoryview(frame)[4:]
        frame = bytes(self._buf[4:end])
        del self._buf[:end]
        return memoryview(frame)

    async def read_frame(self) -> memoryview | None:
        """The next frame, or None at a clean end of stream (EOF between frames)."""
        size = await self.read_size()
        return None if size is None else await self.read_body(size)
