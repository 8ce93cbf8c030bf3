"""Record batches left in their segment files, to be sent with sendfile (Kafka's ``FileRecords``).

A fetch names byte ranges of segment files instead of copying them into memory; the encoder leaves a
hole for them (``protocol.primitives.OutFrame``) and the server streams them from the file. Each range
holds its own duplicate of the file descriptor, so retention or topic deletion closing the segment
while the response waits for a slow client can neither fail the send nor send another file's bytes.
"""

from __future__ import annotations

import os
from typing import NamedTuple


class FileRange(NamedTuple):
    fd: int
    position: int
    size: int


class FileRecords:
    """Ranges of segment files, in order; ``len()`` is their byte count. ``close()`` releases them."""

    __slots__ = ("ranges", "_size")

    def __init__(self, ranges: list[FileRange]) -> None:
        self.ranges = ranges
        self._size = sum(r.size for r in ranges)

    @classmethod
    def of(cls, parts: list[tuple[int, int, int]]) -> FileRecords:
        """From ``(fd, position, size)`` of open segment files: each fd is duplicated."""
        return cls([FileRange(os.dup(fd), pos, size) for fd, pos, size in parts])

    def __len__(self) -> int:
        return self._size

    def tobytes(self) -> bytes:
        """The bytes themselves (for a client that needs them in memory, e.g. down-conversion)."""
        out = bytearray()
        for r in self.ranges:
            data = os.pread(r.fd, r.size, r.position)
            if len(data) != r.size:
                raise OSError(f"segment file shrank: {len(data)} of {r.size} bytes at {r.position}")
            out += data
        return bytes(out)

    def close(self) -> None:
        ranges, self.ranges = self.ranges, []
        for r in ranges:
            try:
                os.close(r.fd)
            except OSError:
                pass

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileRecords({len(self.ranges)} range(s), {self._size} bytes)"
