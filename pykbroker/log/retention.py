"""Which old segments to delete, following Kafka's ``UnifiedLog.deleteOldSegments``.

Three independent rules each select a *prefix* of the segment list (deletion
always starts at the oldest segment and stops at the first one that must
stay). The active (last) segment is never selected here.

* log start offset: a segment whose successor starts at or below the log
  start offset holds only deleted records (after DeleteRecords/retention);
* ``retention.bytes``: drop oldest segments while the log stays at or above
  the limit without them;
* ``retention.ms``: drop segments whose newest record timestamp (or file
  mtime when no record has one) is older than the limit.

Size and time rules only apply when ``cleanup.policy`` contains ``delete``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pykbroker.log.config import LogConfig


class SegmentLike(Protocol):
    base_offset: int
    size: int

    def largest_timestamp(self) -> int: ...


def log_start_offset_breached(segments: Sequence[SegmentLike], log_start_offset: int) -> int:
    n = 0
    for seg, nxt in zip(segments[:-1], segments[1:]):
        if nxt.base_offset > log_start_offset:
            break
        n += 1
    return n


def retention_size_breached(segments: Sequence[SegmentLike], retention_bytes: int) -> int:
    if retention_bytes < 0:
        return 0
    diff = sum(s.size for s in segments) - retention_bytes
    n = 0
    for seg in segments[:-1]:
        if diff - seg.size < 0:
            break
        diff -= seg.size
        n += 1
    return n


def retention_time_breached(segments: Sequence[SegmentLike], retention_ms: int, now_ms: int) -> int:
    if retention_ms < 0:
        return 0
    n = 0
    for seg in segments[:-1]:
        if now_ms - seg.largest_timestamp() <= retention_ms:
            break
        n += 1
    return n


def deletable_prefix(
    segments: Sequence[SegmentLike], config: LogConfig, log_start_offset: int, now_ms: int
) -> int:
    """How many of the oldest segments may be deleted now."""
    n = log_start_offset_breached(segments, log_start_offset)
    if config.delete_enabled:
        n = max(n, retention_size_breached(segments, config.retention_bytes))
        n = max(n, retention_time_breached(segments, config.retention_ms, now_ms))
    return min(n, max(0, len(segments) - 1))
