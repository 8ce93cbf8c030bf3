"""Sparse offset and time indexes of a log segment, in Kafka's file formats.

``.index``     8-byte entries: int32 relative offset, int32 file position
``.timeindex`` 12-byte entries: int64 timestamp, int32 relative offset
(big-endian, relative to the segment's base offset).

Unlike Kafka we do not preallocate and mmap the files: entries are appended
with one unbuffered ``write`` (so a process crash loses nothing the page
cache holds) and mirrored in ``array``\\ s for binary search. The files are
therefore always exactly ``entries * entry_size`` bytes long, and the
"index full" limit of ``segment.index.bytes`` is enforced by count.

An index is a cache: any doubt about it (bad size, entries out of order,
pointing past the log) makes recovery throw it away and rebuild it from the
log, which is why ``sanity_check`` is cheap and strict.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_right
from pathlib import Path
from typing import Final, NamedTuple

_BIG_ENDIAN_HOST: Final = sys.byteorder == "big"


class IndexCorruptError(Exception):
    """An index file fails its sanity check; the caller rebuilds it."""


class OffsetPosition(NamedTuple):
    offset: int
    position: int


class TimestampOffset(NamedTuple):
    timestamp: int
    offset: int


def _load_array(data: bytes, typecode: str) -> array:
    a = array(typecode)
    a.frombytes(data)
    if not _BIG_ENDIAN_HOST:
        a.byteswap()
    return a


class _IndexFile:
    """Append-only file of fixed-size entries."""

    entry_size: int

    def __init__(self, path: Path, base_offset: int, max_index_size: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(1, max_index_size // self.entry_size)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._dirty = False

    def _read_all(self) -> bytes:
        size = os.fstat(self._fd).st_size
        if size % self.entry_size:
            raise IndexCorruptError(f"{self.path.name}: size {size} is not a multiple of {self.entry_size}")
        return os.pread(self._fd, size, 0) if size else b""

    def _append_bytes(self, data: bytes) -> None:
        os.pwrite(self._fd, data, self.entries * self.entry_size)
        self._dirty = True

    @property
    def entries(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def is_full(self) -> bool:
        return self.entries >= self.max_entries

    def truncate_entries(self, n: int) -> None:
        """Keep only the first ``n`` entries, in memory and on disk (undo of a failed append)."""
        if n < self.entries:
            for arr in self._arrays():
                del arr[n:]
        self._truncate_entries(n)

    def _arrays(self) -> tuple[array, ...]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _truncate_entries(self, n: int) -> None:
        os.ftruncate(self._fd, n * self.entry_size)
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def rename(self, path: Path) -> None:
        os.replace(self.path, path)
        self.path = path


class OffsetIndex(_IndexFile):
    """Maps the last offset of some batches to the file position where that batch starts.

    ``lookup(o)`` returns the greatest entry with offset <= o, so scanning
    batches from its position reaches the batch containing ``o``.
    """

    entry_size = 8
    _ENTRY: Final = struct.Struct(">ii")

    def __init__(self, path: Path, base_offset: int, max_index_size: int) -> None:
        super().__init__(path, base_offset, max_index_size)
        self._offsets = array("i")
        self._positions = array("i")

    def load(self) -> None:
        """Read the file into memory (raises IndexCorruptError on a malformed size)."""
        data = self._read_all()
        both = _load_array(data, "i")
        self._offsets = both[0::2]
        self._positions = both[1::2]

    @property
    def entries(self) -> int:
        return len(self._offsets)

    def _arrays(self) -> tuple[array, ...]:
        return self._offsets, self._positions

    def sanity_check(self, log_size: int) -> None:
        offs, poss = self._offsets, self._positions
        for i in range(1, len(offs)):
            if offs[i] <= offs[i - 1] or poss[i] <= poss[i - 1]:
                raise IndexCorruptError(f"{self.path.name}: entries out of order at slot {i}")
        if offs and (offs[0] < 0 or poss[0] < 0 or poss[-1] >= log_size):
            raise IndexCorruptError(f"{self.path.name}: entries point outside the log ({log_size} bytes)")

    def append(self, offset: int, position: int) -> None:
        rel = offset - self.base_offset
        if self._offsets and (rel <= self._offsets[-1] or position <= self._positions[-1]):
            raise ValueError(f"offset index entry ({offset}, {position}) is not after the last one")
        self._append_bytes(self._ENTRY.pack(rel, position))
        self._offsets.append(rel)
        self._positions.append(position)

    def lookup(self, offset: int) -> OffsetPosition:
        i = bisect_right(self._offsets, offset - self.base_offset) - 1
        if i < 0:
            return OffsetPosition(self.base_offset, 0)
        return OffsetPosition(self.base_offset + self._offsets[i], self._positions[i])

    def positions_below(self, limit: int, count: int) -> list[int]:
        """Up to ``count`` largest entry positions smaller than ``limit``, largest first."""
        i = bisect_right(self._positions, limit - 1)
        return [self._positions[j] for j in range(i - 1, max(i - 1 - count, -1), -1)]

    def last_entry(self) -> OffsetPosition:
        if not self._offsets:
            return OffsetPosition(self.base_offset, 0)
        return OffsetPosition(self.base_offset + self._offsets[-1], self._positions[-1])

    def truncate_to_position(self, position: int) -> None:
        """Drop entries pointing at or beyond ``position`` (the log is cut there)."""
        keep = bisect_right(self._positions, position - 1)
        if keep < len(self._offsets):
            del self._offsets[keep:]
            del self._positions[keep:]
            self._truncate_entries(keep)

    def reset(self) -> None:
        """Empty the index, in memory and on disk (whatever the file held)."""
        del self._offsets[:]
        del self._positions[:]
        self._truncate_entries(0)


class TimeIndex(_IndexFile):
    """Maps increasing "max timestamp so far" values to the offset that first reached them.

    Every record before that offset's batch has a smaller timestamp, so a
    search for timestamp ``t`` may start from the greatest entry <= ``t``.
    """

    entry_size = 12
    _ENTRY: Final = struct.Struct(">qi")

    def __init__(self, path: Path, base_offset: int, max_index_size: int) -> None:
        super().__init__(path, base_offset, max_index_size)
        self._timestamps = array("q")
        self._offsets = array("i")

    def load(self) -> None:
        data = self._read_all()
        ts = array("q")
        offs = array("i")
        for t, o in self._ENTRY.iter_unpack(data):
            ts.append(t)
            offs.append(o)
        self._timestamps, self._offsets = ts, offs

    @property
    def entries(self) -> int:
        return len(self._timestamps)

    def _arrays(self) -> tuple[array, ...]:
        return self._timestamps, self._offsets

    def sanity_check(self, max_relative_offset: int) -> None:
        ts, offs = self._timestamps, self._offsets
        for i in range(1, len(ts)):
            if ts[i] <= ts[i - 1] or offs[i] < offs[i - 1]:
                raise IndexCorruptError(f"{self.path.name}: entries out of order at slot {i}")
        if offs and (offs[0] < 0 or offs[-1] > max_relative_offset):
            raise IndexCorruptError(f"{self.path.name}: entries point outside the segment")

    def maybe_append(self, timestamp: int, offset: int, *, skip_full_check: bool = False) -> None:
        """Add an entry if ``timestamp`` is larger than the last one (Kafka's rule)."""
        if not skip_full_check and self.is_full:
            return
        if self._timestamps and timestamp <= self._timestamps[-1]:
            return
        rel = offset - self.base_offset
        if self._offsets and rel < self._offsets[-1]:
            return
        self._append_bytes(self._ENTRY.pack(timestamp, rel))
        self._timestamps.append(timestamp)
        self._offsets.append(rel)

    def lookup(self, timestamp: int) -> TimestampOffset:
        """Greatest entry with timestamp <= ``timestamp``, else (-1, base offset)."""
        i = bisect_right(self._timestamps, timestamp) - 1
        if i < 0:
            return TimestampOffset(-1, self.base_offset)
        return TimestampOffset(self._timestamps[i], self.base_offset + self._offsets[i])

    def last_entry(self) -> TimestampOffset | None:
        if not self._timestamps:
            return None
        return TimestampOffset(self._timestamps[-1], self.base_offset + self._offsets[-1])

    def truncate_to_offset(self, offset: int) -> None:
        """Drop entries whose offset is >= ``offset``."""
        rel = offset - self.base_offset
        keep = len(self._offsets)
        while keep and self._offsets[keep - 1] >= rel:
            keep -= 1
        if keep < len(self._offsets):
            del self._timestamps[keep:]
            del self._offsets[keep:]
            self._truncate_entries(keep)

    def reset(self) -> None:
        """Empty the index, in memory and on disk (whatever the file held)."""
        del self._timestamps[:]
        del self._offsets[:]
        self._truncate_entries(0)
