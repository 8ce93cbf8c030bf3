"""Retention by time and size, and the pure rules behind it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pykbroker.log import LogConfig, PartitionLog
from pykbroker.log import retention as r
from pykbroker.log.checkpoint import LOG_START_OFFSET_FILE
from pykbroker.protocol.records import Record, build_batch

T0 = 1_700_000_000_000
HOUR = 3_600_000


def batch(ts: int, n: int = 2) -> bytes:
    return build_batch([Record(i, 0, b"k%d" % i, b"x" * 40) for i in range(n)], base_timestamp=ts)  # keyed: compacted topics need keys


def cfg(**kafka: int | str) -> LogConfig:
    """Kafka-named configs; segment_bytes sets internal.segment.bytes (Kafka 4: below 1 MiB)."""
    names = {"segment_bytes": "internal.segment.bytes"}
    return LogConfig.from_kafka_configs({names.get(k, k.replace("_", ".")): str(v) for k, v in kafka.items()})


def make_log(tmp_path: Path, config: LogConfig, hours: int = 10) -> PartitionLog:
    """One segment per hour of data: segment.ms rolls on record timestamps."""
    log = PartitionLog.open(tmp_path / "t-0", config, fsync=False)
    for h in range(hours):
        for k in range(3):
            log.append(batch(T0 + h * HOUR + k))
    return log


def test_retention_ms_deletes_old_segments_but_never_the_active_one(tmp_path: Path) -> None:
    config = cfg(segment_ms=HOUR // 2, retention_ms=3 * HOUR)
    log = make_log(tmp_path, config)
    assert len(log.segments) == 10
    now = T0 + 9 * HOUR + 10
    deleted = log.delete_old_segments(now)
    # segments whose newest record is more than 3 h old: hours 0..6 (hour 6 is 3h + 8ms old)
    assert deleted == 7
    assert log.log_start_offset == log.segments[0].base_offset == 42
    assert len(log.segments) == 3
    assert (tmp_path / "t-0" / LOG_START_OFFSET_FILE).read_text().strip() == "42"
    assert not (tmp_path / "t-0" / "00000000000000000000.log").exists()
    assert log.read(42, 100).first_offset == 42
    assert log.delete_old_segments(now + 1) == 0
    # far in the future: everything but the active segment goes
    assert log.delete_old_segments(now + 100 * HOUR) == 2
    assert len(log.segments) == 1 and log.log_start_offset == log.active_segment.base_offset
    assert log.read(log.log_start_offset, 1 << 20).first_offset == log.log_start_offset


def test_retention_survives_restart(tmp_path: Path) -> None:
    config = cfg(segment_ms=HOUR // 2, retention_ms=HOUR)
    log = make_log(tmp_path, config, hours=4)
    log.delete_old_segments(T0 + 4 * HOUR)
    start = log.log_start_offset
    log.close()
    log = PartitionLog.open(tmp_path / "t-0", config, fsync=False)
    assert log.log_start_offset == start > 0
    assert log.delete_old_segments(T0 + 4 * HOUR) == 0


def test_retention_bytes(tmp_path: Path) -> None:
    probe = make_log(tmp_path / "probe", cfg(segment_ms=HOUR // 2), hours=10)
    seg_size = probe.segments[0].size
    config = cfg(segment_ms=HOUR // 2, retention_bytes=4 * seg_size + 1)
    log = make_log(tmp_path, config)
    assert log.delete_old_segments(T0) == 5  # 10 segments -> keep 5 (>= 4 segments + 1 byte)
    assert log.size_in_bytes == 5 * seg_size
    assert log.log_start_offset == 30


def test_infinite_retention_and_compact_only_policy(tmp_path: Path) -> None:
    log = make_log(tmp_path / "a", cfg(segment_ms=HOUR // 2, retention_ms=-1, retention_bytes=-1))
    assert log.delete_old_segments(T0 + 1000 * HOUR) == 0
    log = make_log(tmp_path / "b", cfg(segment_ms=HOUR // 2, retention_ms=1, cleanup_policy="compact"))
    assert log.delete_old_segments(T0 + 1000 * HOUR) == 0
    log = make_log(tmp_path / "c", cfg(segment_ms=HOUR // 2, retention_ms=1, cleanup_policy="compact,delete"))
    assert log.delete_old_segments(T0 + 1000 * HOUR) == 9


def test_segments_below_log_start_offset_go_even_without_delete_policy(tmp_path: Path) -> None:
    log = make_log(tmp_path, cfg(segment_ms=HOUR // 2, cleanup_policy="compact"))
    log.delete_records(13)
    assert log.segments[0].base_offset == 12 and log.log_start_offset == 13


def test_update_config_applies_to_retention(tmp_path: Path) -> None:
    log = make_log(tmp_path, cfg(segment_ms=HOUR // 2))
    assert log.delete_old_segments(T0 + 24 * HOUR) == 0
    log.update_config(cfg(segment_ms=HOUR // 2, retention_ms=HOUR))
    assert log.delete_old_segments(T0 + 24 * HOUR) == 9


# ------------------------------------------------------------- pure rules


@dataclass
class Seg:
    base_offset: int
    size: int
    ts: int

    def largest_timestamp(self) -> int:
        return self.ts


def test_rules_select_prefixes() -> None:
    segs = [Seg(0, 100, 10), Seg(10, 100, 50), Seg(20, 100, 20), Seg(30, 100, 5)]
    assert r.log_start_offset_breached(segs, 0) == 0
    assert r.log_start_offset_breached(segs, 20) == 2
    assert r.log_start_offset_breached(segs, 10**9) == 3  # never the active segment
    assert r.retention_size_breached(segs, 250) == 1
    assert r.retention_size_breached(segs, 200) == 2
    assert r.retention_size_breached(segs, 0) == 3
    assert r.retention_size_breached(segs, -1) == 0
    # time: stops at the first segment that is still young (segment 1), even if a later one is old
    assert r.retention_time_breached(segs, 30, now_ms=60) == 1
    assert r.retention_time_breached(segs, -1, now_ms=10**9) == 0
    assert r.deletable_prefix(segs, cfg(retention_ms=30, retention_bytes=200), 0, 60) == 2
