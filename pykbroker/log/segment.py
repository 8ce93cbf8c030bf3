"""One log segment: a ``.log`` file of whole record batches plus its two sparse indexes.

Modelled on Kafka's ``LogSegment``. Batches are written exactly as they were
received (after offset patching); reads return raw file bytes. Index
entries are added every ``index.interval.bytes`` of log, keyed by the
*last* offset of a batch and pointing at the batch's first byte, exactly as
Kafka does, so our index files are byte-compatible with Kafka's.
"""

from __future__ import annotations

import mmap
import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from pykbroker.log.config import INT_MAX, LogConfig
from pykbroker.log.errors import KafkaStorageError
from pykbroker.log.index import IndexCorruptError, OffsetIndex, TimeIndex
from pykbroker.log.txn_index import TXN_INDEX_SUFFIX, TransactionIndex
from pykbroker.log.writeback import PREALLOCATE_AHEAD, PREALLOCATE_BYTES, preallocate, start_writeback
from pykbroker.protocol.records import (
    _HEADER,
    BATCH_HEADER_SIZE,
    MIN_BATCH_LENGTH,
    NO_TIMESTAMP,
    BatchHeader,
    CorruptRecordError,
    RecordError,
    validate_batch_at,
)

LOG_SUFFIX: Final = ".log"
INDEX_SUFFIX: Final = ".index"
TIME_INDEX_SUFFIX: Final = ".timeindex"
#: The four files of one segment, by their (live) suffix.
SEGMENT_FILE_SUFFIXES: Final = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)
_SCAN_CHUNK: Final = 16 * 1024
_make_header = BatchHeader._make
_unpack_header = _HEADER.unpack_from


def segment_file(directory: Path, base_offset: int, suffix: str) -> Path:
    """Kafka's naming: 20-digit zero-padded base offset + suffix."""
    return directory / f"{base_offset:020d}{suffix}"


def _kind(name: str, suffix: str) -> str:
    """".index" of "00000000000000000000.index.swap" with suffix ".swap"."""
    return name[20 : len(name) - len(suffix)] if suffix else name[20:]


def now_ms() -> int:
    return int(time.time() * 1000)


class LogSegment:
    """A segment's files and the in-memory facts derived from them.

    ``max_timestamp``/``offset_of_max_timestamp`` follow Kafka's
    ``maxTimestampAndOffsetSoFar``: the largest batch max-timestamp and the
    last offset of the (first) batch that carried it.
    """

    def __init__(self, directory: Path, base_offset: int, config: LogConfig, *, created_ms: int | None = None,
                 suffix: str = "") -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.config = config
        #: "" for a live segment; ".cleaned"/".swap"/".deleted" while the cleaner swaps it (Kafka's names).
        self.suffix = suffix
        self.log_path = segment_file(directory, base_offset, LOG_SUFFIX + suffix)
        self._fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644)
        self.size = os.fstat(self._fd).st_size
        self._writeback_from = self.size  # paced writeback covers what is appended from here
        #: Blocks are allocated (log/writeback.py ``preallocate``) up to here; only while it grows.
        self._allocated_to = self.size
        self._growing = True
        #: A preallocation in a worker thread against a close or the release of what it allocated.
        self._file_lock = threading.Lock()
        self.offset_index = OffsetIndex(
            segment_file(directory, base_offset, INDEX_SUFFIX + suffix), base_offset, config.segment_index_bytes
        )
        self.time_index = TimeIndex(
            segment_file(directory, base_offset, TIME_INDEX_SUFFIX + suffix), base_offset, config.segment_index_bytes
        )
        self.txn_index = TransactionIndex(segment_file(directory, base_offset, TXN_INDEX_SUFFIX + suffix))
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = -1
        #: Offset after the last batch; None while unknown (not scanned).
        self.next_offset: int | None = None if self.size else base_offset
        self._bytes_since_index_entry = 0
        self._first_batch_timestamp: int | None = None
        self._first_batch_timestamp_known = False
        self.created_ms = now_ms() if created_ms is None else created_ms
        self.roll_jitter_ms = random.randrange(config.segment_jitter_ms) if config.segment_jitter_ms > 0 else 0
        self._dirty = False

    # ---------------------------------------------------------------- opening

    @classmethod
    def create(cls, directory: Path, base_offset: int, config: LogConfig, *, suffix: str = "") -> LogSegment:
        """A new, empty segment (any stale files with that base offset and suffix are discarded)."""
        for kind in SEGMENT_FILE_SUFFIXES:
            segment_file(directory, base_offset, kind + suffix).unlink(missing_ok=True)
        return cls(directory, base_offset, config, suffix=suffix)

    def rename_suffix(self, suffix: str) -> None:
        """Rename every file of the segment to end with ``suffix`` (Kafka's changeFileSuffixes); open
        handles stay valid. The ``.log`` goes last, so its name alone tells how far a swap got."""
        if suffix == self.suffix:
            return
        for index in (self.offset_index, self.time_index):
            index.rename(segment_file(self.directory, self.base_offset, _kind(index.path.name, self.suffix) + suffix))
        txn = self.txn_index
        new_txn = segment_file(self.directory, self.base_offset, TXN_INDEX_SUFFIX + suffix)
        if txn.path.exists():
            os.replace(txn.path, new_txn)
        txn.path = new_txn
        new_log = segment_file(self.directory, self.base_offset, LOG_SUFFIX + suffix)
        os.replace(self.log_path, new_log)
        self.log_path = new_log
        self.suffix = suffix

    def index_files_exist(self) -> bool:
        return self.offset_index.path.exists() and self.time_index.path.exists()

    def load_indexes(self) -> None:
        """Trust the index files (after a sanity check); raise IndexCorruptError otherwise."""
        self.offset_index.load()
        self.offset_index.sanity_check(self.size)
        self.time_index.load()
        self.time_index.sanity_check(INT_MAX)
        last = self.time_index.last_entry()
        if last is not None:
            self.max_timestamp, self.offset_of_max_timestamp = last
        self._bytes_since_index_entry = 0

    def recover(self) -> int:
        """Validate every batch (length, CRC, offsets), rebuild both indexes, cut an invalid tail.

        Returns the number of bytes truncated. This is Kafka's
        ``LogSegment.recover``: the log file is the truth, indexes are derived.
        """
        self.offset_index.reset()
        self.time_index.reset()
        self.max_timestamp, self.offset_of_max_timestamp = NO_TIMESTAMP, -1
        self._bytes_since_index_entry = 0
        self._first_batch_timestamp_known = False
        valid, last_offset = self._validate_from(0, self.base_offset - 1)
        return self._finish_recovery(valid, last_offset)

    def recover_tail(self) -> bool:
        """After a clean shutdown: validate only the batches after the last index entry.

        Returns False if the tail is not whole and valid, or the indexes do
        not line up with it; the caller then runs a full ``recover``, which
        rebuilds whatever this scan touched.
        """
        start = self.offset_index.last_entry().position
        try:
            valid, last_offset = self._validate_from(start, self.base_offset - 1, check_order_from_index=True)
        except IndexCorruptError:
            return False
        if valid != self.size:
            return False
        if valid == 0:
            self.next_offset = self.base_offset
        elif last_offset < self.offset_index.last_entry().offset or last_offset < self.offset_of_max_timestamp:
            return False
        else:
            self.next_offset = last_offset + 1
        return True

    def _validate_from(self, start: int, prev_last: int, *, check_order_from_index: bool = False) -> tuple[int, int]:
        """Scan whole valid batches from ``start``; return (end position, last offset)."""
        size = os.fstat(self._fd).st_size
        self.size = size
        if start >= size:
            return start, prev_last
        mm = mmap.mmap(self._fd, size, access=mmap.ACCESS_READ)
        mv = memoryview(mm)
        pos = start
        try:
            first = True
            while pos < size:
                try:
                    h = validate_batch_at(mv, pos, strict=False)
                except RecordError:
                    break
                if h.base_offset < self.base_offset or h.last_offset - self.base_offset > INT_MAX:
                    break
                if first and check_order_from_index:
                    if start and h.last_offset != self.offset_index.last_entry().offset:
                        raise IndexCorruptError("last index entry does not point at a batch boundary")
                elif h.base_offset <= prev_last:
                    break
                first = False
                self._index_batch(h, pos)
                prev_last = h.last_offset
                pos += h.size
        finally:
            mv.release()
            mm.close()
        return pos, prev_last

    def _finish_recovery(self, valid: int, last_offset: int) -> int:
        truncated = self.size - valid
        if truncated:
            os.ftruncate(self._fd, valid)
            self.size = valid
            self._dirty = True
        self.next_offset = last_offset + 1 if valid else self.base_offset
        return truncated

    # --------------------------------------------------------------- appending

    def _index_batch(self, h: BatchHeader, position: int) -> None:
        self._index(h.base_offset + h.last_offset_delta, h.max_timestamp, h.batch_length + 12, position)

    def _index(self, last_offset: int, max_timestamp: int, size: int, position: int) -> None:
        """Kafka's per-batch bookkeeping: max timestamp so far and a sparse index entry."""
        if not self._first_batch_timestamp_known and position == 0:
            self._first_batch_timestamp = max_timestamp
            self._first_batch_timestamp_known = True
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = last_offset
        if self._bytes_since_index_entry > self.config.index_interval_bytes:
            self.offset_index.append(last_offset, position)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self._bytes_since_index_entry = 0
        self._bytes_since_index_entry += size

    def append(self, data: bytes | bytearray | memoryview, batches: list[tuple[int, int, int]]) -> None:
        """Write whole, validated, offset-patched batches at the end of the file.

        ``batches`` holds ``(last offset, max timestamp, size)`` of each batch in ``data``.
        """
        self._write(data, self.size)
        self.add_written(len(data), batches)

    def write_at_end(self, data: bytes | bytearray | memoryview) -> None:
        """Worker thread: ``data`` into the file past its end, not yet part of the segment (readers
        and ``size`` see it once ``add_written`` runs, on the event loop). The caller keeps every
        other append and truncation of this segment out meanwhile; a close waits for the write."""
        with self._file_lock:
            if self._fd < 0:
                raise KafkaStorageError(f"write to {self.log_path} failed: the segment is closed")
            self._write(data, self.size, locked=True)

    def _write(self, data: bytes | bytearray | memoryview, start: int, locked: bool = False) -> None:
        n = len(data)
        try:
            written = os.pwrite(self._fd, data, start)
            if written < n:
                mv = memoryview(data)
                while written < n:
                    written += os.pwrite(self._fd, mv[written:], start + written)
        except OSError as exc:
            try:
                if locked:
                    os.ftruncate(self._fd, start)
                    self._allocated_to = start
                else:
                    with self._file_lock:
                        os.ftruncate(self._fd, start)
                        self._allocated_to = start
            except OSError:
                pass
            raise KafkaStorageError(f"write to {self.log_path} failed: {exc}") from exc

    def add_written(self, n: int, batches: list[tuple[int, int, int]]) -> None:
        """The ``n`` bytes written past the end become part of the segment: indexes, size."""
        start = self.size
        saved = self._index_state()
        try:
            pos = start
            for last_offset, max_timestamp, size in batches:
                self._index(last_offset, max_timestamp, size, pos)
                pos += size
        except OSError as exc:
            # An index write failed (e.g. disk full) after the log write: undo both, so the
            # segment is exactly as before and the append can be retried.
            self._restore_index_state(saved, start)
            raise KafkaStorageError(f"write to {self.offset_index.path.parent / self.offset_index.path.name} "
                                    f"or its time index failed: {exc}") from exc
        self.size = start + n
        self._dirty = True
        self.next_offset = batches[-1][0] + 1

    def _index_state(self) -> tuple[int, int, int, int, int, int | None, bool]:
        return (self.offset_index.entries, self.time_index.entries, self.max_timestamp,
                self.offset_of_max_timestamp, self._bytes_since_index_entry,
                self._first_batch_timestamp, self._first_batch_timestamp_known)

    def _restore_index_state(self, saved: tuple[int, int, int, int, int, int | None, bool], size: int) -> None:
        (offsets, times, self.max_timestamp, self.offset_of_max_timestamp, self._bytes_since_index_entry,
         self._first_batch_timestamp, self._first_batch_timestamp_known) = saved
        try:
            self.offset_index.truncate_entries(offsets)
            self.time_index.truncate_entries(times)
            os.ftruncate(self._fd, size)
        except OSError:
            pass  # shrinking a file does not need space; if even that fails, recovery cuts the tail

    def config_changed(self, config: LogConfig) -> None:
        self.config = config
        self.offset_index.max_entries = max(1, config.segment_index_bytes // OffsetIndex.entry_size)
        self.time_index.max_entries = max(1, config.segment_index_bytes // TimeIndex.entry_size)

    # ----------------------------------------------------------------- rolling

    def first_batch_timestamp(self) -> int | None:
        if not self._first_batch_timestamp_known:
            self._first_batch_timestamp_known = True
            self._first_batch_timestamp = None
            for _, h in self.iter_headers(0):
                self._first_batch_timestamp = h.max_timestamp
                break
        return self._first_batch_timestamp

    def should_roll(self, messages_size: int, max_timestamp: int, max_offset: int, now: int) -> bool:
        """Kafka's ``LogSegment.shouldRoll``: size, age, full indexes, relative-offset overflow."""
        cfg = self.config
        first_ts = self.first_batch_timestamp() if self.size else None
        waited = max_timestamp - first_ts if first_ts is not None and first_ts >= 0 else now - self.created_ms
        reached_roll_ms = waited > cfg.segment_ms - self.roll_jitter_ms
        return (
            self.size > cfg.segment_size - messages_size
            or (self.size > 0 and reached_roll_ms)
            or self.offset_index.is_full
            or self.time_index.is_full
            or not 0 <= max_offset - self.base_offset <= INT_MAX
        )

    def on_become_inactive(self) -> None:
        """Make the time index end with the segment's max timestamp (Kafka does this on roll)."""
        if self.max_timestamp != NO_TIMESTAMP:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp, skip_full_check=True)

    # ------------------------------------------------------------------ reading

    def largest_timestamp(self) -> int:
        """Max record timestamp, or the file's mtime when no batch has one (for retention)."""
        if self.max_timestamp >= 0:
            return self.max_timestamp
        return int(os.fstat(self._fd).st_mtime * 1000)

    def iter_headers(self, pos: int, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
        """Yield ``(position, header)`` of whole batches from ``pos``, reading small chunks."""
        end = self.size if end is None else end
        buf = b""
        buf_start = pos
        while pos + BATCH_HEADER_SIZE <= end:
            rel = pos - buf_start
            if rel < 0 or rel + BATCH_HEADER_SIZE > len(buf):
                buf = os.pread(self._fd, min(_SCAN_CHUNK, end - pos), pos)
                buf_start, rel = pos, 0
                if len(buf) < BATCH_HEADER_SIZE:
                    return
            h = _make_header(_unpack_header(buf, rel))
            if h.batch_length < MIN_BATCH_LENGTH:
                raise CorruptRecordError(f"{self.log_path.name}: bad batch length {h.batch_length} at {pos}")
            nxt = pos + h.size
            if nxt > end:
                return
            yield pos, h
            pos = nxt

    def translate_offset(self, offset: int) -> tuple[int, BatchHeader] | None:
        """Position and header of the first batch whose last offset is >= ``offset``."""
        start = self.offset_index.lookup(offset).position
        for pos, h in self.iter_headers(start):
            if h.last_offset >= offset:
                return pos, h
        return None

    def read_bytes(self, position: int, size: int) -> bytes:
        return os.pread(self._fd, size, position)

    def read_batches(
        self, position: int, max_bytes: int, max_offset: int, *, min_one_batch: bool
    ) -> tuple[bytes, BatchHeader | None, bool]:
        """Whole batches from ``position`` totalling at most ``max_bytes``, stopping before ``max_offset``.

        Returns ``(data, last batch header, exhausted)``; see ``locate_batches``. The data is read
        with one ``pread``.
        """
        end, last, exhausted = self.locate_batches(position, max_bytes, max_offset, min_one_batch=min_one_batch)
        data = os.pread(self._fd, end - position, position) if end > position else b""
        return data, last, exhausted

    def locate_batches(
        self, position: int, max_bytes: int, max_offset: int, *, min_one_batch: bool
    ) -> tuple[int, BatchHeader | None, bool]:
        """Where whole batches from ``position`` end, within ``max_bytes`` and before ``max_offset``.

        Returns ``(end position, last batch header, exhausted)`` where ``exhausted``
        means the range runs to the end of this segment (the caller may
        continue with the next one). With ``min_one_batch`` the first batch
        is included even when larger than ``max_bytes``. The cut point is
        found from the offset index, so the cost does not grow with the
        number of batches; nothing but headers is read.
        """
        size = self.size
        if position >= size:
            return position, None, True
        limit_end = size
        if max_offset < self.read_next_offset():
            found = self.translate_offset(max_offset)
            if found is not None:
                p, h = found
                limit_end = p + h.size if h.base_offset < max_offset else p
        if limit_end <= position:
            return position, None, False
        window_end = min(limit_end, position + max(max_bytes, 0))
        last = self._last_whole_batch(position, window_end)
        if last is None:
            if not min_one_batch:
                return position, None, False
            first = _make_header(_unpack_header(os.pread(self._fd, BATCH_HEADER_SIZE, position), 0))
            end = position + first.size
            if end > limit_end:
                return position, None, False
            return end, first, end == size
        p, h = last
        cut = p + h.size
        return cut, h, cut == size

    @property
    def fd(self) -> int:
        """The open ``.log`` file (for FileRecords, which duplicates it)."""
        return self._fd

    def _last_whole_batch(self, position: int, window_end: int) -> tuple[int, BatchHeader] | None:
        """The last batch starting at/after ``position`` that ends by ``window_end``.

        Walks headers from the last index entry before ``window_end`` (a
        batch start); if the batch there overruns the window, from the entry
        before it, whose walk must end exactly at the later entry.
        """
        starts = [p for p in self.offset_index.positions_below(window_end, 2) if p > position]
        starts.append(position)
        for start in starts:
            last = None
            for pos, h in self.iter_headers(start, window_end):
                last = (pos, h)
            if last is not None:
                return last
        return None

    def find_offset_by_timestamp(self, timestamp: int, start_offset: int) -> tuple[int, int] | None:
        """First record (offset >= ``start_offset``) with timestamp >= ``timestamp``.

        The time index narrows the scan; only the batch holding the answer is
        decompressed to find the exact record.
        """
        from pykbroker.protocol.records import record_offsets_and_timestamps

        ts_entry = self.time_index.lookup(timestamp)
        position = self.offset_index.lookup(max(ts_entry.offset, start_offset)).position
        for pos, h in self.iter_headers(position):
            if h.max_timestamp < timestamp or h.last_offset < start_offset:
                continue
            for off, ts in record_offsets_and_timestamps(self.read_bytes(pos, h.size)):
                if ts >= timestamp and off >= start_offset:
                    return off, ts
        return None

    # -------------------------------------------------------------- truncation

    def truncate_to(self, offset: int) -> int:
        """Remove the batch containing ``offset`` and everything after; return bytes removed."""
        found = self.translate_offset(offset)
        if found is None:
            return 0
        return self.truncate_to_position(found[0])

    def truncate_to_position(self, position: int) -> int:
        removed = self.size - position
        if removed <= 0:
            return 0
        with self._file_lock:
            os.ftruncate(self._fd, position)
            self._allocated_to = min(self._allocated_to, position)
        self.size = position
        self._dirty = True
        self.txn_index.truncate_to(self._offset_at(position))
        # Indexes and max timestamp are cheap to rebuild from headers; truncation is rare.
        self.offset_index.reset()
        self.time_index.reset()
        self.max_timestamp, self.offset_of_max_timestamp = NO_TIMESTAMP, -1
        self._bytes_since_index_entry = 0
        self._first_batch_timestamp_known = False
        last = self.base_offset - 1
        for pos, h in self.iter_headers(0):
            self._index_batch(h, pos)
            last = h.last_offset
        self.next_offset = last + 1 if position else self.base_offset
        if not position:
            self.created_ms = now_ms()
        return removed

    def _offset_at(self, position: int) -> int:
        """The first offset of the batch at ``position`` (or after the last one that ends there)."""
        last = self.base_offset - 1
        for _, h in self.iter_headers(0, position):
            last = h.last_offset
        return last + 1

    def read_next_offset(self) -> int:
        """Offset after the last batch (scans from the last index entry if not known)."""
        if self.next_offset is None:
            last = self.base_offset - 1
            for _, h in self.iter_headers(self.offset_index.last_entry().position):
                last = h.last_offset
            self.next_offset = last + 1
        return self.next_offset

    # ------------------------------------------------------------ durability

    def writeback_pending(self) -> int:
        """Bytes appended since writeback was last started (``start_writeback``)."""
        return self.size - self._writeback_from

    def start_writeback(self) -> None:
        """Start the kernel writing out the bytes appended since the last call (worker thread)."""
        end = self.size
        start = min(self._writeback_from, end)  # a truncation may have cut below it
        self._writeback_from = end
        if self._fd >= 0:
            start_writeback(self._fd, start, end - start)

    def preallocation_due(self) -> bool:
        """Less than PREALLOCATE_AHEAD bytes are allocated past the end, and the segment may still grow."""
        return (self._growing and self.size + PREALLOCATE_AHEAD > self._allocated_to
                and self._allocated_to < self.config.segment_size)

    def preallocate(self) -> None:
        """Allocate the next PREALLOCATE_BYTES past the end (worker thread; advice: a failure
        leaves appends to allocate as they go, and is not retried before the next chunk)."""
        with self._file_lock:
            if not self._growing or self._fd < 0:
                return
            start = max(self._allocated_to, self.size)
            end = min(start + PREALLOCATE_BYTES, self.config.segment_size)
            if end > start:
                preallocate(self._fd, start, end - start)
                self._allocated_to = end

    def release_preallocation(self) -> None:
        """The segment stopped growing (rolled, closed): give back the blocks allocated past its end."""
        with self._file_lock:
            self._growing = False
            if self._fd >= 0 and self._allocated_to > self.size:
                try:
                    os.ftruncate(self._fd, self.size)  # same size: frees only the blocks past the end
                except OSError:
                    pass  # the blocks stay allocated until the segment is deleted: space, not data
            self._allocated_to = self.size

    def flush(self, *, fsync: bool = True) -> None:
        if fsync:
            if self._dirty:
                os.fsync(self._fd)
            self.offset_index.flush()
            self.time_index.flush()
            self.txn_index.flush()
        self._dirty = False

    def close(self) -> None:
        self.on_become_inactive()
        self.release_preallocation()
        for closer in (self.offset_index.close, self.time_index.close, self.txn_index.close):
            closer()
        with self._file_lock:  # not under a write in a worker thread (write_at_end)
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def close_handles(self) -> None:
        """Close file descriptors without touching the files (used before deletion)."""
        self.offset_index.close()
        self.time_index.close()
        self.txn_index.close()
        with self._file_lock:  # not under a preallocation, whose fd number could be reused meanwhile
            self._growing = False
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def delete(self) -> None:
        self.close_handles()
        for path in (self.log_path, self.offset_index.path, self.time_index.path, self.txn_index.path):
            path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self.size})"
