"""Log compaction of one partition log (Kafka's ``Cleaner`` and ``LogCleanerManager.cleanableOffsets``).

A compacted log has a *clean* head (already compacted), a *dirty* middle (appended since, from
the cleaner checkpoint on) and an *uncleanable* tail: the active segment, anything from the last
stable offset on (open transactions), segments younger than ``min.compaction.lag.ms`` and
rolled segments whose fsync is still pending. Only whole segments before that tail are
cleaned.

A log is cleaned when dirty bytes / (clean + dirty bytes) exceeds ``min.cleanable.dirty.ratio``,
or when its oldest dirty record is older than ``max.compaction.lag.ms``. A round:

1. ``plan`` (event loop, cheap): the offsets above; ``CleaningJob.open`` duplicates the segments'
   file descriptors, so that retention or topic deletion closing a segment cannot make a read
   hit another file.
2. ``build_offset_map`` (worker thread): key -> latest offset over the dirty segments, skipping
   aborted transactions and markers; it stops at a batch boundary when the map is full, and the
   round then ends there (the next one continues).
3. Per group of consecutive segments that fits one segment (``group_segments``):
   ``clean_group`` (worker thread) writes the kept batches (``cleaner_filter``) into a
   ``.cleaned`` segment, fsyncs it and commits it as ``.swap`` (``swap.py``); the caller then
   switches the segment list on the event loop and finishes the renames in a thread.

Reads and writes are throttled together by ``log.cleaner.io.max.bytes.per.second``; every batch
checks a stop flag, so a shutdown does not wait for a whole round.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pykbroker.log.cleaner_filter import BatchFilter, TxnTracker, control_type
from pykbroker.log.config import INT_MAX, LONG_MAX, LogConfig
from pykbroker.log.offset_map import OffsetMap
from pykbroker.log.segment import LogSegment
from pykbroker.log.swap import CLEANED_SUFFIX, commit_cleaned
from pykbroker.log.txn_index import AbortedTxn
from pykbroker.protocol.batch_rewrite import iter_keys, record_spans
from pykbroker.protocol.records import BATCH_HEADER_SIZE, LOG_OVERHEAD, BatchHeader, parse_batch_header

log = logging.getLogger(__name__)


class CleaningAborted(Exception):
    """The broker is stopping (or the partition went away): the round's unswapped output is dropped."""


class Throttler:
    """Kafka's Throttler: bytes read and written by all cleaner threads held to a rate, checked
    every 300 ms; waits on the stop flag so that a shutdown interrupts the sleep."""

    CHECK_INTERVAL_S = 0.3

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = bytes_per_second
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._observed = 0.0

    def maybe_throttle(self, n: int, stop: threading.Event) -> None:
        if math.isinf(self.rate) or self.rate >= 1e300:  # Kafka's default: Double.MaxValue
            return
        with self._lock:
            self._observed += n
            now = time.monotonic()
            elapsed = now - self._start
            owed = self._observed / self.rate
            if elapsed <= self.CHECK_INTERVAL_S and owed <= self.CHECK_INTERVAL_S:
                return  # (the second test: a burst larger than an interval's worth waits at once)
            sleep = owed - elapsed
            self._start, self._observed = now + max(0.0, sleep), 0.0
        if sleep > 0:
            stop.wait(sleep)


@dataclass
class SegmentView:
    """A non-active segment as a cleaning round reads it: its own descriptor and its size then."""

    segment: LogSegment
    fd: int
    size: int
    next_base: int
    index_entries: int

    @property
    def base_offset(self) -> int:
        return self.segment.base_offset


@dataclass(frozen=True)
class CleanPlan:
    """Where a log's dirty part begins and ends, and how dirty it is (Kafka's LogToClean)."""

    first_dirty: int
    #: Segment boundary below which everything may be cleaned.
    upper: int
    clean_bytes: int
    dirty_bytes: int
    need_compaction_now: bool
    #: The log start offset is past the stored checkpoint (or it is missing): reset it.
    checkpoint_reset: bool

    @property
    def dirty_ratio(self) -> float:
        total = self.clean_bytes + self.dirty_bytes
        return self.dirty_bytes / total if total else 0.0

    def should_clean(self, config: LogConfig) -> bool:
        if self.dirty_bytes <= 0:
            return False
        return self.need_compaction_now or self.dirty_ratio > config.min_cleanable_dirty_ratio


def _segment_ends(segments: tuple[LogSegment, ...], log_end_offset: int) -> list[int]:
    return [s.base_offset for s in segments[1:]] + [log_end_offset]


def plan(segments: tuple[LogSegment, ...], config: LogConfig, *, log_start_offset: int, log_end_offset: int,
         last_stable_offset: int, first_unflushed: int, checkpoint: int | None, now_ms: int) -> CleanPlan:
    """Kafka's cleanableOffsets + the dirty ratio; pure (only segment metadata is read)."""
    ends = _segment_ends(segments, log_end_offset)
    valid = checkpoint is not None and log_start_offset <= checkpoint <= log_end_offset
    first_dirty = checkpoint if valid and checkpoint is not None else log_start_offset
    uncleanable = min(last_stable_offset, segments[-1].base_offset, first_unflushed)
    if config.min_compaction_lag_ms > 0:
        for seg, end in zip(segments[:-1], ends):
            if end > first_dirty and seg.largest_timestamp() > now_ms - config.min_compaction_lag_ms:
                uncleanable = min(uncleanable, seg.base_offset)
                break
    upper = segments[0].base_offset
    clean = dirty = 0
    first_dirty_segment: LogSegment | None = None
    for seg, end in zip(segments[:-1], ends):
        if end > uncleanable:
            break
        upper = end
        if end <= first_dirty:
            clean += seg.size
        else:
            dirty += seg.size
            first_dirty_segment = first_dirty_segment or seg
    need_now = False
    if config.max_compaction_lag_ms != LONG_MAX and first_dirty_segment is not None:
        first_ts = first_dirty_segment.first_batch_timestamp()
        need_now = first_ts is not None and first_ts >= 0 and now_ms - first_ts > config.max_compaction_lag_ms
    return CleanPlan(first_dirty, upper, clean, dirty, need_now, not valid)


def iter_file_batches(fd: int, start: int, end: int, buffer_size: int) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Whole batches of a segment file between two positions, read ``buffer_size`` at a time."""
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(max(buffer_size, BATCH_HEADER_SIZE), end - pos), pos)
        if len(chunk) < BATCH_HEADER_SIZE:
            return
        mv = memoryview(chunk)
        rel = 0
        while rel + BATCH_HEADER_SIZE <= len(chunk):
            h = parse_batch_header(mv, rel)
            if rel + h.size > len(chunk):
                break
            yield h, mv[rel : rel + h.size]
            rel += h.size
        if rel == 0:  # a batch larger than the buffer: read it whole
            h = parse_batch_header(mv, 0)
            data = os.pread(fd, h.size, pos)
            if len(data) < h.size:
                return
            yield h, memoryview(data)
            rel = h.size
        pos += rel


@dataclass
class CleaningJob:
    """One round over one log: the segments it may read, and what the round depends on."""

    directory: Path
    config: LogConfig
    fsync: bool
    plan: CleanPlan
    views: list[SegmentView]
    aborted: list[AbortedTxn]
    last_records: dict[int, tuple[int | None, int]]
    now_ms: int
    buffer_size: int
    throttler: Throttler
    stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def open(cls, directory: Path, segments: tuple[LogSegment, ...], log_end_offset: int, config: LogConfig,
             fsync: bool, p: CleanPlan, aborted: list[AbortedTxn], last_records: dict[int, tuple[int | None, int]],
             now_ms: int, buffer_size: int, throttler: Throttler) -> CleaningJob:
        """On the event loop: the segments below ``p.upper``, each read through a duplicate descriptor."""
        views = []
        for seg, end in zip(segments, _segment_ends(segments, log_end_offset)):
            if end > p.upper or seg is segments[-1]:
                break
            views.append(SegmentView(seg, os.dup(seg.fd), seg.size, end, seg.offset_index.entries))
        return cls(directory, config, fsync, p, views, aborted, last_records, now_ms, buffer_size, throttler)

    def close(self) -> None:
        views, self.views = self.views, []
        for v in views:
            os.close(v.fd)

    def _batches(self, view: SegmentView) -> Iterator[tuple[BatchHeader, memoryview]]:
        for h, data in iter_file_batches(view.fd, 0, view.size, self.buffer_size):
            if self.stop.is_set():
                raise CleaningAborted(f"{self.directory.name}: cleaning stopped")
            self.throttler.maybe_throttle(h.size, self.stop)
            yield h, data

    # ------------------------------------------------------------ worker thread

    def build_offset_map(self, capacity: int) -> OffsetMap:
        """Key -> latest offset over the dirty segments (Kafka's buildOffsetMap)."""
        offsets = OffsetMap(capacity)
        txns = TxnTracker.of(self.aborted)
        start = self.plan.first_dirty
        for view in self.views:
            if view.next_base <= start:
                continue
            for h, data in self._batches(view):
                if h.last_offset < start:
                    continue
                if not offsets.has_room_for(h.records_count):
                    return offsets
                if h.is_control:
                    txns.on_control_batch(h, control_type(record_spans(data)[2]))
                elif not txns.on_batch(h):
                    for offset, key, _ in iter_keys(data):
                        if key is not None and offset >= start:
                            offsets.put(key, offset)
                offsets.latest_offset = h.last_offset
        return offsets

    def groups(self, end_offset: int) -> list[list[SegmentView]]:
        """Kafka's groupSegmentsBySize over the segments below ``end_offset``: consecutive segments
        whose sizes add up to at most one segment, whose index entries fit one index, and whose
        offsets stay within a 32-bit delta of the group's base."""
        views = [v for v in self.views if v.base_offset < end_offset]
        max_size = self.config.segment_size
        max_entries = max(1, self.config.segment_index_bytes // 8)
        out: list[list[SegmentView]] = []
        while views:
            group = [views.pop(0)]
            size, entries = group[0].size, group[0].index_entries
            while views and size + views[0].size <= max_size and entries + views[0].index_entries <= max_entries \
                    and views[0].next_base - 1 - group[0].base_offset <= INT_MAX:
                nxt = views.pop(0)
                group.append(nxt)
                size += nxt.size
                entries += nxt.index_entries
            out.append(group)
        return out

    def new_filter(self, offsets: OffsetMap) -> BatchFilter:
        return BatchFilter(offsets, self.last_records, self.plan.upper, self.now_ms, self.config.delete_retention_ms)

    def clean_group(self, group: list[SegmentView], batch_filter: BatchFilter, txns: TxnTracker) -> LogSegment:
        """Write the group's kept batches into one ``.cleaned`` segment and commit it as ``.swap``."""
        new = LogSegment.create(self.directory, group[0].base_offset, self.config, suffix=CLEANED_SUFFIX)
        try:
            txns.kept_aborted = []
            for view in group:
                buf = bytearray()
                entries: list[tuple[int, int, int]] = []
                for h, data in self._batches(view):
                    out = batch_filter.clean(data, txns)
                    if out is None:
                        continue
                    kept = parse_batch_header(out) if out is not data else h
                    entries.append((kept.last_offset, kept.max_timestamp, kept.batch_length + LOG_OVERHEAD))
                    buf += out
                    if len(buf) >= self.buffer_size:
                        new.append(buf, entries)
                        self.throttler.maybe_throttle(len(buf), self.stop)
                        buf, entries = bytearray(), []
                if entries:
                    new.append(buf, entries)
                    self.throttler.maybe_throttle(len(buf), self.stop)
            for txn in txns.kept_aborted:
                new.txn_index.append(txn)
            new.on_become_inactive()
            new.flush(fsync=self.fsync)
            mtime = os.fstat(group[-1].fd).st_mtime_ns
            os.utime(new.log_path, ns=(mtime, mtime))  # retention.ms of compact,delete goes by the old age
            if self.stop.is_set():
                raise CleaningAborted(f"{self.directory.name}: cleaning stopped")
            commit_cleaned(new, fsync=self.fsync)
        except BaseException:
            new.delete()
            raise
        return new


__all__ = ["CleanPlan", "CleaningAborted", "CleaningJob", "SegmentView", "Throttler", "iter_file_batches", "plan"]
