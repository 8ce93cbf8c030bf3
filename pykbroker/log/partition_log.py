"""The log of one partition: ordered segments, offsets, reads, retention (Kafka's ``UnifiedLog``).

Single-threaded by design (the broker runs one trio thread); all file I/O is
synchronous and short: an append is one ``pwrite`` of the bytes received, a
read one or two ``pread``\\ s per segment touched.

Durability follows Kafka's defaults: appends land in the OS page cache and
survive a process crash; ``fsync`` happens on ``flush.messages`` /
``flush.ms``, when a segment is rolled, and on ``close``. An OS crash can
lose the unflushed tail, which recovery then cuts at the last whole batch.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterator
from typing import NamedTuple
from pathlib import Path

from pykbroker.log import retention
from pykbroker.log.checkpoint import (
    CLEAN_SHUTDOWN_FILE,
    CLEANER_CHECKPOINT_FILE,
    LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE,
    fsync_dir,
    read_int,
    write_atomic,
    write_int,
)
from pykbroker.log.config import LONG_MAX, LogConfig
from pykbroker.log.file_records import FileRecords
from pykbroker.log.errors import (
    InvalidTimestampError,
    KafkaStorageError,
    MessageTooLargeError,
    OffsetOutOfRangeError,
    RecordBatchTooLargeError,
)
from pykbroker.log.recovery import load_log
from pykbroker.log.segment import LogSegment, now_ms as _now_ms
from pykbroker.log.txn_index import AbortedTxn
from pykbroker.protocol import records as rec
from pykbroker.protocol.batch_rewrite import iter_keys
from pykbroker.protocol.records import (
    LOG_OVERHEAD,
    NO_TIMESTAMP,
    BatchHeader,
    InvalidRecordError,
    patch_base_offset,
    patch_partition_leader_epoch,
    set_log_append_time,
    validate_batches,
)

log = logging.getLogger(__name__)

# ListOffsets special timestamps.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5
EARLIEST_PENDING_UPLOAD_TIMESTAMP = -6  # KIP-1023 (ListOffsets v11)


class AppendInfo(NamedTuple):
    """Outcome of an append, enough for a ProduceResponse partition entry."""

    first_offset: int
    last_offset: int
    max_timestamp: int
    #: Last offset of the (first) batch carrying ``max_timestamp`` (Kafka's shallow offset).
    offset_of_max_timestamp: int
    #: The LogAppendTime stamped on the batches, or -1 for CreateTime topics.
    log_append_time: int
    log_start_offset: int
    record_count: int
    batch_count: int
    size: int


class PreparedAppend(NamedTuple):
    """An append ready to be written (PartitionLog.prepare_append)."""

    segment: LogSegment
    data: bytearray
    #: (last offset, max timestamp, size) of each batch in ``data``.
    entries: list[tuple[int, int, int]]
    info: AppendInfo
    now: int


class ReadResult(NamedTuple):
    """Whole batches read from the log, plus the offsets a FetchResponse reports."""

    records: bytes
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
    #: Base offset of the first returned batch (-1 when empty). It may be below
    #: the fetch offset: the batch containing the fetch offset is returned whole.
    first_offset: int = -1
    #: Offset after the last returned batch (the fetch offset when empty).
    next_offset: int = -1


class PartitionLog:
    """An append-only, segmented, indexed partition log on local disk."""

    def __init__(self, directory: Path, config: LogConfig, *, fsync: bool = True) -> None:
        """Use ``PartitionLog.open``; this constructor loads and recovers the directory."""
        self.directory = directory
        self.config = config
        self.fsync = fsync
        loaded = load_log(directory, config)
        self._segments: list[LogSegment] = loaded.segments
        self._bases: list[int] = [s.base_offset for s in self._segments]
        self._log_start_offset = loaded.log_start_offset
        self._recovery_point = loaded.recovery_point
        self.recovered_bytes_truncated = loaded.truncated_bytes
        self.rebuilt_segments = loaded.rebuilt_segments
        self.clean_shutdown = loaded.clean_shutdown
        self._log_end_offset = self.active_segment.read_next_offset()
        self._unflushed_messages = 0
        self._last_flush_ms = _now_ms()
        self._closed = False
        #: Set by the partition layer: rolls, flushes and segment deletions are then left for it to
        #: run in a worker thread (``flush_rolled``, ``flush``, ``take_deleted_segments``) instead of
        #: happening inside ``append``/retention on the caller's thread.
        self.deferred_io = False
        #: An append reached flush.messages / flush.ms while ``deferred_io``: the caller must flush.
        self.flush_requested = False
        self._rolled: list[LogSegment] = []
        #: The next segment's files, created ahead of a roll in a worker thread (see roll_ahead).
        self._prepared: LogSegment | None = None
        self._deleted: list[LogSegment] = []
        self._persisted_log_start_offset = loaded.checkpointed_log_start_offset
        self._checkpoint_log_start_offset()
        #: Offset where the log's dirty (not yet cleaned) part begins (Kafka's cleaner checkpoint).
        self.cleaner_checkpoint: int | None = read_int(directory / CLEANER_CHECKPOINT_FILE)

    @classmethod
    def open(cls, directory: Path, config: LogConfig | None = None, *, fsync: bool = True) -> PartitionLog:
        """Open (creating if needed) and recover the partition log in ``directory``.

        ``fsync=False`` never calls fsync (data still survives a process
        crash via the page cache); handy for tests and throwaway brokers.
        """
        return cls(Path(directory), config if config is not None else LogConfig(), fsync=fsync)

    # -------------------------------------------------------------- properties

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        return tuple(self._segments)

    @property
    def log_end_offset(self) -> int:
        """Offset the next appended record gets (last offset of the last batch + 1)."""
        return self._log_end_offset

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def high_watermark(self) -> int:
        """Single node: every appended record is committed."""
        return self._log_end_offset

    @property
    def size_in_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    def update_config(self, config: LogConfig) -> None:
        """Apply changed topic configs (AlterConfigs); they affect future appends/rolls/retention."""
        self.config = config
        for seg in self._segments:
            seg.config_changed(config)

    # ------------------------------------------------------------------ append

    def append(
        self,
        records: bytes | bytearray | memoryview,
        *,
        assign_offsets: bool = True,
        log_append_time_ms: int | None = None,
        strict: bool = True,
        leader_epoch: int | None = None,
    ) -> AppendInfo:
        """Validate and append a records blob of v2 batches; return the offsets assigned (see prepare_append)."""
        prepared = self.prepare_append(records, assign_offsets=assign_offsets, log_append_time_ms=log_append_time_ms,
                                       strict=strict, leader_epoch=leader_epoch)
        if isinstance(prepared, AppendInfo):
            return prepared
        prepared.segment.append(prepared.data, prepared.entries)
        return self.complete_append(prepared)

    def prepare_append(
        self,
        records: bytes | bytearray | memoryview,
        *,
        assign_offsets: bool = True,
        log_append_time_ms: int | None = None,
        strict: bool = True,
        leader_epoch: int | None = None,
    ) -> "PreparedAppend | AppendInfo":
        """Everything of an append but the write: validated, offset-patched bytes for the active
        segment (rolled if due), which ``segment.append`` (or ``write_at_end`` in a worker thread,
        then ``add_written``) writes and ``complete_append`` makes part of the log. Nothing changes
        until then, and nothing else may append meanwhile. An empty blob gives its AppendInfo at once.

        ``assign_offsets`` (leader behaviour) numbers the batches from the log
        end offset; otherwise their offsets must continue the log (follower
        / internal replay). ``log_append_time_ms`` is this append's clock
        (default: now); it is stamped on the batches when the topic uses
        ``message.timestamp.type=LogAppendTime`` and drives time-based roll.
        ``strict`` applies Kafka's client-produce checks (see
        ``validate_batches``); the broker's own control batches need
        ``strict=False``. ``leader_epoch`` is stamped as partitionLeaderEpoch.

        Raises ``CorruptRecordError``/``InvalidRecordError``,
        ``MessageTooLargeError``, ``RecordBatchTooLargeError``,
        ``InvalidTimestampError``; a rejected append changes nothing.
        """
        self._check_open()
        headers = validate_batches(records, strict=strict)
        if not headers:
            return AppendInfo(-1, -1, NO_TIMESTAMP, -1, -1, self._log_start_offset, 0, 0, 0)
        cfg = self.config
        now = _now_ms() if log_append_time_ms is None else log_append_time_ms
        self._check_sizes(headers, len(records))
        if strict and cfg.compact_enabled:
            self._check_keys(records, headers)
        if assign_offsets and cfg.target_compression is not None:
            records, headers = self._recompress(records, headers, cfg.target_compression)
            self._check_sizes(headers, len(records))
        if assign_offsets and not cfg.log_append_time:
            self._check_timestamps(headers, now)

        buf = bytearray(records)  # the one copy: received bytes become the stored bytes
        entries: list[tuple[int, int, int]] = []  # (last offset, max timestamp, size) per batch
        pos = 0
        next_offset = first_offset = self._log_end_offset
        stamp = assign_offsets and cfg.log_append_time
        max_ts, max_ts_offset, count = NO_TIMESTAMP, -1, 0
        for h in headers:
            size = h.batch_length + LOG_OVERHEAD
            if assign_offsets:
                patch_base_offset(buf, pos, next_offset)
                base = next_offset
            else:
                base = h.base_offset
                if base < next_offset:
                    raise InvalidRecordError(
                        f"out of order offsets: batch at base offset {base} appended to a log "
                        f"ending at offset {next_offset}"
                    )
                if not entries:
                    first_offset = base
            last = base + h.last_offset_delta
            ts = h.max_timestamp
            if leader_epoch is not None:
                patch_partition_leader_epoch(buf, pos, leader_epoch)
            if stamp:
                set_log_append_time(buf, pos, now)
                ts = now
            if ts > max_ts:
                max_ts, max_ts_offset = ts, last
            entries.append((last, ts, size))
            count += h.records_count
            next_offset = last + 1
            pos += size

        self._maybe_roll(len(buf), max_ts, next_offset - 1, first_offset, now)
        prepared = PreparedAppend(self.active_segment, buf, entries, AppendInfo(
            first_offset,
            next_offset - 1,
            max_ts,
            max_ts_offset,
            now if stamp else -1,
            self._log_start_offset,
            count,
            len(entries),
            len(buf),
        ), now)
        return prepared

    def complete_append(self, prepared: "PreparedAppend") -> AppendInfo:
        """After the prepared bytes are in the segment file: the log end moves, the flush policy applies."""
        cfg = self.config
        self._log_end_offset = prepared.info.last_offset + 1
        self._unflushed_messages += prepared.info.record_count
        if self._unflushed_messages >= cfg.flush_messages or (
            cfg.flush_ms != LONG_MAX and prepared.now - self._last_flush_ms >= cfg.flush_ms
        ):
            if self.deferred_io:
                self.flush_requested = True
            else:
                self.flush()
        return prepared.info

    def _check_sizes(self, headers: list[BatchHeader], total: int) -> None:
        limit = self.config.max_message_bytes
        for h in headers:
            if h.size > limit:
                raise MessageTooLargeError(
                    f"record batch of {h.size} bytes exceeds max.message.bytes={limit} of {self.directory.name}"
                )
        if total > self.config.segment_size:
            raise RecordBatchTooLargeError(
                f"records of {total} bytes exceed segment.bytes={self.config.segment_size} of {self.directory.name}"
            )

    def _check_keys(self, records: bytes | bytearray | memoryview, headers: list[BatchHeader]) -> None:
        """Kafka's LogValidator.validateKey: a compacted topic refuses records without a key."""
        mv = memoryview(records)
        pos = 0
        for h in headers:
            for _, key, _ in iter_keys(mv[pos : pos + h.size]):
                if key is None:
                    raise InvalidRecordError(
                        f"Compacted topic cannot accept message without key in topic partition {self.directory.name}.")
            pos += h.size

    def _check_timestamps(self, headers: list[BatchHeader], now: int) -> None:
        before, after = self.config.timestamp_before_max_ms, self.config.timestamp_after_max_ms
        if before == LONG_MAX and after == LONG_MAX:
            return
        for h in headers:
            # Batch-level approximation of Kafka's per-record check: the base
            # timestamp is normally the earliest record, maxTimestamp the latest.
            lo = min(h.base_timestamp, h.max_timestamp)
            if lo != NO_TIMESTAMP and now - lo > before:
                raise InvalidTimestampError(
                    f"timestamp {lo} is more than message.timestamp.before.max.ms={before} before now ({now})"
                )
            if h.max_timestamp != NO_TIMESTAMP and h.max_timestamp - now > after:
                raise InvalidTimestampError(
                    f"timestamp {h.max_timestamp} is more than message.timestamp.after.max.ms={after} after now ({now})"
                )

    @staticmethod
    def _recompress(
        records: bytes | bytearray | memoryview, headers: list[BatchHeader], codec: int
    ) -> tuple[bytes | bytearray | memoryview, list[BatchHeader]]:
        """Re-encode batches whose codec differs from the topic's ``compression.type``."""
        if all(h.compression == codec or h.is_control for h in headers):
            return records, headers
        mv = memoryview(records)
        parts: list[bytes] = []
        pos = 0
        for h in headers:
            raw = mv[pos : pos + h.size]
            pos += h.size
            if h.compression == codec or h.is_control:
                parts.append(bytes(raw))
                continue
            parts.append(rec.recompress_batch(raw, codec))
        data = b"".join(parts)
        return data, validate_batches(data, strict=False)

    # -------------------------------------------------------------------- roll

    def _maybe_roll(self, size: int, max_ts: int, max_offset: int, first_offset: int, now: int) -> None:
        seg = self.active_segment
        if not seg.should_roll(size, max_ts, max_offset, now):
            return
        if seg.size == 0:
            # An empty active segment that cannot take these offsets is replaced, not rolled.
            if seg.base_offset != first_offset:
                seg.delete()
                self._segments[-1] = LogSegment.create(self.directory, first_offset, self.config)
                self._bases[-1] = first_offset
            return
        self.roll(first_offset)

    def roll(self, next_offset: int | None = None) -> LogSegment:
        """Close the active segment for appends and start a new one at the log end offset."""
        self._check_open()
        old = self.active_segment
        base = max(self._log_end_offset, next_offset or 0)
        if old.size == 0 and old.base_offset == base:
            return old
        new = self._take_prepared(base) or LogSegment.create(self.directory, base, self.config)
        old.on_become_inactive()
        self._segments.append(new)
        self._bases.append(base)
        log.debug("%s: rolled new segment at offset %d", self.directory.name, base)
        if self.deferred_io:
            self._rolled.append(old)  # flushed by flush_rolled() in a worker thread, as Kafka's async flush
        else:
            self._flush_segments([old], base)
        return new

    def roll_ahead(self, size: int, headers: list[BatchHeader]) -> int | None:
        """The base offset of the segment that appending these batches next would roll to, if any.

        Creating a segment's three files can wait on the file system's journal for as long as
        another partition's fsync takes: the caller creates it in a worker thread first
        (``new_segment``) and hands it over with ``offer_prepared``.
        """
        seg = self.active_segment
        if seg.size == 0 or not headers:
            return None
        count = sum(h.last_offset_delta + 1 for h in headers)
        max_ts = max(h.max_timestamp for h in headers)
        if not seg.should_roll(size, max_ts, self._log_end_offset + count - 1, _now_ms()):
            return None
        if self._prepared is not None and self._prepared.base_offset == self._log_end_offset:
            return None
        return self._log_end_offset

    def new_segment(self, base: int) -> LogSegment:
        """A new segment's files at ``base``, not yet part of the log: safe in a worker thread."""
        return LogSegment.create(self.directory, base, self.config)

    def offer_prepared(self, segment: LogSegment) -> None:
        """A segment created ahead (``roll_ahead``); the next roll at its base offset uses it."""
        if self._closed or segment.base_offset != self._log_end_offset:
            segment.delete()
            return
        if self._prepared is not None:
            self._prepared.delete()
        self._prepared = segment

    def _take_prepared(self, base: int) -> LogSegment | None:
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared.base_offset != base:
            prepared.delete()
            return None
        return prepared

    def _flush_segments(self, segments: list[LogSegment], recovery_point: int) -> None:
        for seg in segments:
            seg.flush(fsync=self.fsync)
        if self.fsync:
            fsync_dir(self.directory)
        # Everything below ``recovery_point`` is durable and its indexes are final.
        if recovery_point > self._recovery_point:
            self._recovery_point = recovery_point
            write_int(self.directory / RECOVERY_POINT_FILE, recovery_point, fsync=self.fsync)

    @property
    def first_unflushed_offset(self) -> int:
        """Base offset of the oldest segment not yet fsynced after its roll (else the active one's)."""
        return min((s.base_offset for s in self._rolled), default=self.active_segment.base_offset)

    @property
    def has_rolled_segments(self) -> bool:
        return bool(self._rolled)

    def flush_rolled(self) -> None:
        """fsync segments rolled since the last call and advance the recovery point (worker thread)."""
        rolled, self._rolled = self._rolled, []
        if not rolled:
            return
        for seg in rolled:
            seg.release_preallocation()
        next_base = max(s.base_offset for s in rolled)
        bases = self._bases
        i = bisect_right(bases, next_base)
        recovery_point = bases[i] if i < len(bases) else self._log_end_offset
        try:
            self._flush_segments([s for s in rolled if s.fd >= 0], recovery_point)
        except OSError:
            self._rolled[:0] = rolled  # try again next time
            raise

    def take_deleted_segments(self) -> list[LogSegment]:
        """Segments dropped by retention whose files are still to be removed (by the caller, off-loop)."""
        deleted, self._deleted = self._deleted, []
        return deleted

    # -------------------------------------------------------------------- read

    def _segment_index_for(self, offset: int) -> int:
        return max(0, bisect_right(self._bases, offset) - 1)

    def _out_of_range(self, offset: int) -> OffsetOutOfRangeError:
        return OffsetOutOfRangeError(
            f"offset {offset} is out of range for {self.directory.name}: the log has offsets "
            f"[{self._log_start_offset}, {self._log_end_offset})"
        )

    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        *,
        min_one_batch: bool = True,
        max_offset: int | None = None,
        as_file_records: bool = False,
    ) -> ReadResult:
        """Read whole batches starting with the one that contains ``fetch_offset``.

        At most ``max_bytes`` are returned, except that with ``min_one_batch``
        the first batch comes whole even if larger. Reads continue into the
        following segments until ``max_bytes`` is filled. Batches starting at
        or after ``max_offset`` (e.g. the high watermark) are not returned.
        Raises OffsetOutOfRangeError outside [log start offset, log end offset];
        at exactly the log end offset the result is empty. ``as_file_records``
        returns the batches as ranges of the segment files (``FileRecords``,
        nothing read into memory but headers) instead of bytes.
        """
        self._check_open()
        leo = self._log_end_offset
        if fetch_offset < self._log_start_offset or fetch_offset > leo:
            raise self._out_of_range(fetch_offset)
        upper = leo if max_offset is None else min(max_offset, leo)
        ranges: list[tuple[LogSegment, int, int]] = []  # (segment, position, end)
        total = 0
        first_offset = -1
        next_offset = fetch_offset
        if fetch_offset < upper:
            i = self._segment_index_for(fetch_offset)
            while i < len(self._segments):
                seg = self._segments[i]
                i += 1
                found = seg.translate_offset(fetch_offset) if not ranges else (0, None)
                if found is None:
                    continue
                end, last, exhausted = seg.locate_batches(
                    found[0], max_bytes - total, upper, min_one_batch=min_one_batch and not ranges
                )
                if end > found[0]:
                    if not ranges:
                        first_offset = found[1].base_offset if found[1] is not None else seg.base_offset
                    ranges.append((seg, found[0], end))
                    total += end - found[0]
                    assert last is not None
                    next_offset = last.last_offset + 1
                if not exhausted or total >= max_bytes:
                    break
        records: bytes | FileRecords
        if as_file_records:
            records = FileRecords.of([(seg.fd, pos, end - pos) for seg, pos, end in ranges])
        else:
            parts = [seg.read_bytes(pos, end - pos) for seg, pos, end in ranges]
            records = parts[0] if len(parts) == 1 else b"".join(parts)
        return ReadResult(
            records=records,
            high_watermark=self.high_watermark,
            log_start_offset=self._log_start_offset,
            log_end_offset=leo,
            first_offset=first_offset,
            next_offset=next_offset,
        )

    def iter_batches(self, start_offset: int | None = None) -> Iterator[tuple[BatchHeader, bytes]]:
        """Every batch from ``start_offset`` (default: log start) as ``(header, bytes)``.

        For broker-internal replay (e.g. loading ``__consumer_offsets``); reads
        one batch at a time.
        """
        offset = self._log_start_offset if start_offset is None else start_offset
        if offset >= self._log_end_offset:
            return
        for i in range(self._segment_index_for(offset), len(self._segments)):
            seg = self._segments[i]
            found = seg.translate_offset(offset)
            if found is None:
                continue
            for pos, h in seg.iter_headers(found[0]):
                yield h, seg.read_bytes(pos, h.size)
                offset = h.last_offset + 1

    # --------------------------------------------------------- transactions

    def index_aborted(self, txn: AbortedTxn) -> None:
        """Record an aborted transaction in the index of the segment holding its ABORT marker."""
        self._check_open()
        try:
            self.active_segment.txn_index.append(txn)
        except OSError as e:
            raise KafkaStorageError(f"{self.directory.name}: writing the transaction index failed: {e}") from e

    def collect_aborted(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper_bound): what a read_committed
        Fetch reports so that the consumer drops their records (Kafka's collectAbortedTransactions)."""
        out: list[AbortedTxn] = []
        for seg in self._segments[self._segment_index_for(fetch_offset):]:
            out.extend(seg.txn_index.collect(fetch_offset, upper_bound))
        return out

    # --------------------------------------------------------- offset lookups

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record with timestamp >= ``timestamp``, or None."""
        self._check_open()
        for seg in self._segments:
            if seg.max_timestamp < timestamp or seg.size == 0:
                continue
            found = seg.find_offset_by_timestamp(timestamp, self._log_start_offset)
            if found is not None:
                return found
        return None

    def max_timestamp_offset(self) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record carrying the log's largest timestamp (ListOffsets -3)."""
        best: LogSegment | None = None
        for seg in self._segments:
            if seg.size and (best is None or seg.max_timestamp > best.max_timestamp):
                best = seg
        if best is None or best.max_timestamp == NO_TIMESTAMP:
            return None
        target = best.max_timestamp
        found = best.translate_offset(best.offset_of_max_timestamp)
        start = found[0] if found else 0
        for pos, h in best.iter_headers(start):
            if h.max_timestamp == target:
                if h.timestamp_type == rec.TIMESTAMP_LOG_APPEND_TIME:
                    return h.base_offset, target
                for off, ts in rec.record_offsets_and_timestamps(best.read_bytes(pos, h.size)):
                    if ts == target:
                        return off, ts
        return None

    def fetch_offset_by_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """ListOffsets semantics including the special timestamps -1/-2/-3/-4 (-5/-6, tiered storage only, give None)."""
        if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
            return self._log_start_offset, NO_TIMESTAMP
        if timestamp == LATEST_TIMESTAMP:
            return self.high_watermark, NO_TIMESTAMP
        if timestamp == MAX_TIMESTAMP:
            return self.max_timestamp_offset()
        if timestamp < 0:
            return None
        return self.offset_for_timestamp(timestamp)

    # --------------------------------------------------------------- retention

    def _delete_prefix(self, n: int, reason: str) -> int:
        if n <= 0:
            return 0
        doomed = self._segments[:n]
        del self._segments[:n]
        del self._bases[:n]
        for seg in doomed:
            log.info("%s: deleting segment %d (%s)", self.directory.name, seg.base_offset, reason)
            if seg in self._rolled:
                self._rolled.remove(seg)
            if self.deferred_io:
                self._deleted.append(seg)
            else:
                seg.delete()
        if self._segments[0].base_offset > self._log_start_offset:
            self._log_start_offset = self._segments[0].base_offset
        self._checkpoint_log_start_offset()
        return n

    def delete_old_segments(self, now_ms: int | None = None) -> int:
        """Apply ``retention.ms``/``retention.bytes`` and the log start offset; return segments deleted."""
        self._check_open()
        now = _now_ms() if now_ms is None else now_ms
        n = retention.deletable_prefix(self._segments, self.config, self._log_start_offset, now)
        return self._delete_prefix(n, "retention")

    def delete_records(self, before_offset: int) -> int:
        """DeleteRecords: make ``before_offset`` the log start offset; return the new low watermark.

        ``-1`` means the high watermark. Offsets beyond the high watermark
        raise OffsetOutOfRangeError.
        """
        self._check_open()
        target = self.high_watermark if before_offset == -1 else before_offset
        if target < 0 or target > self.high_watermark:
            raise OffsetOutOfRangeError(
                f"cannot delete records before offset {before_offset} of {self.directory.name}: "
                f"high watermark is {self.high_watermark}"
            )
        if target > self._log_start_offset:
            self._log_start_offset = target
            self._checkpoint_log_start_offset()
            self._delete_prefix(retention.log_start_offset_breached(self._segments, target), "log start offset")
        return self._log_start_offset

    # -------------------------------------------------------------- compaction

    def replace_segments(self, old: list[LogSegment], new: LogSegment) -> bool:
        """Put a cleaned segment in place of ``old`` (consecutive, not active) in one step on the
        caller's thread, so a read or append sees either list, never a mix. False (nothing done)
        when they are no longer the log's: retention, truncation or deletion got there first."""
        if self._closed or not old:
            return False
        for i, seg in enumerate(self._segments):
            if seg is old[0]:
                break
        else:
            return False
        end = i + len(old)
        if end >= len(self._segments) or any(a is not b for a, b in zip(self._segments[i:end], old)):
            return False
        self._segments[i:end] = [new]
        self._bases[i:end] = [new.base_offset]
        self._rolled = [s for s in self._rolled if all(s is not o for o in old)]
        return True

    def write_cleaner_checkpoint(self, offset: int) -> None:
        """Persist where the dirty part now begins (blocking: worker thread)."""
        write_int(self.directory / CLEANER_CHECKPOINT_FILE, offset, fsync=self.fsync)
        self.cleaner_checkpoint = offset

    # -------------------------------------------------------------- truncation

    def truncate_to(self, offset: int) -> None:
        """Remove all records at and after ``offset`` (for replication divergence).

        Like Kafka, the cut happens at the start of the batch containing
        ``offset``, so ``offset`` should be a batch boundary.
        """
        self._check_open()
        if offset < 0:
            raise ValueError(f"cannot truncate to negative offset {offset}")
        if offset >= self._log_end_offset:
            return
        if offset < self._segments[0].base_offset:
            self.truncate_fully_and_start_at(offset)
            return
        while len(self._segments) > 1 and self._segments[-1].base_offset > offset:
            self._segments.pop().delete()
            self._bases.pop()
        seg = self.active_segment
        seg.truncate_to(offset)
        self._log_end_offset = seg.read_next_offset()
        self._recovery_point = min(self._recovery_point, self._log_end_offset)
        write_int(self.directory / RECOVERY_POINT_FILE, self._recovery_point, fsync=self.fsync)
        if self._log_start_offset > self._log_end_offset:
            self._log_start_offset = self._log_end_offset
            self._checkpoint_log_start_offset()

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Delete every segment and restart the (empty) log at ``offset``."""
        self._check_open()
        for seg in self._segments:
            seg.delete()
        new = LogSegment.create(self.directory, offset, self.config)
        self._segments = [new]
        self._bases = [offset]
        self._log_end_offset = offset
        self._log_start_offset = offset
        self._recovery_point = offset
        write_int(self.directory / RECOVERY_POINT_FILE, offset, fsync=self.fsync)
        self._checkpoint_log_start_offset()

    # -------------------------------------------------------------- durability

    def flush(self) -> None:
        """fsync everything appended so far (a no-op on disk when ``fsync=False``)."""
        self._check_open()
        self.flush_requested = False
        pending = self._unflushed_messages
        for seg in self._segments[-2:]:
            seg.flush(fsync=self.fsync)
        self._unflushed_messages = max(0, self._unflushed_messages - pending)
        self._last_flush_ms = _now_ms()

    def maybe_flush(self, now_ms: int | None = None) -> bool:
        """Flush if ``flush.ms`` has elapsed with unflushed data (call periodically)."""
        now = _now_ms() if now_ms is None else now_ms
        if self.flush_due(now):
            self.flush()
            return True
        return False

    def flush_due(self, now_ms: int | None = None) -> bool:
        """Whether ``flush.ms`` has elapsed with unflushed data."""
        now = _now_ms() if now_ms is None else now_ms
        return bool(self._unflushed_messages) and now - self._last_flush_ms >= self.config.flush_ms

    def _checkpoint_log_start_offset(self) -> None:
        if self._persisted_log_start_offset == self._log_start_offset:
            return
        self._persisted_log_start_offset = self._log_start_offset
        write_int(self.directory / LOG_START_OFFSET_FILE, self._log_start_offset, fsync=self.fsync)

    def close(self) -> None:
        """Flush, finalise indexes and leave a clean-shutdown marker so reopening skips the full scan."""
        if self._closed:
            return
        for seg in self.take_deleted_segments():
            seg.delete()
        self._take_prepared(-1)  # never used: its files go, so that recovery does not meet them
        self._rolled = []
        for seg in self._segments:
            seg.on_become_inactive()
            seg.flush(fsync=self.fsync)
            seg.close()
        self._checkpoint_log_start_offset()
        write_int(self.directory / RECOVERY_POINT_FILE, self._log_end_offset, fsync=self.fsync)
        write_atomic(self.directory / CLEAN_SHUTDOWN_FILE, b"", fsync=self.fsync)
        self._closed = True

    def close_handles(self) -> None:
        """Release file descriptors without writing anything (before deleting the directory)."""
        for seg in [*self._segments, *self.take_deleted_segments()]:
            seg.close_handles()
        if self._prepared is not None:
            self._prepared.close_handles()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"partition log {self.directory.name} is closed")

    def __enter__(self) -> PartitionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.directory.name}, start={self._log_start_offset}, "
            f"end={self._log_end_offset}, segments={len(self._segments)})"
        )
