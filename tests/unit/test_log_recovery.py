"""Recovery on open: torn tails, corrupt batches, lost or damaged indexes, crash vs clean shutdown."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykbroker.log import LogConfig, PartitionLog
from pykbroker.log.checkpoint import CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_FILE
from pykbroker.protocol.records import Record, build_batch, iter_batches, validate_batches

T0 = 1_700_000_000_000


def batch(n: int, *, ts: int = T0, value_size: int = 20, codec: int = 0) -> bytes:
    return build_batch(
        [Record(offset_delta=i, timestamp_delta=i, key=None, value=bytes([i % 251]) * value_size) for i in range(n)],
        base_timestamp=ts,
        compression=codec,
    )


def cfg(**kafka: int | str) -> LogConfig:
    """Kafka-named configs; segment_bytes sets internal.segment.bytes (Kafka 4: below 1 MiB)."""
    names = {"segment_bytes": "internal.segment.bytes"}
    return LogConfig.from_kafka_configs({names.get(k, k.replace("_", ".")): str(v) for k, v in kafka.items()})


def crash(log: PartitionLog) -> None:
    """Simulate a process crash: drop the log without close (no clean-shutdown marker)."""
    log.close_handles()


def seg_path(d: Path, base: int, suffix: str = ".log") -> Path:
    return d / f"{base:020d}{suffix}"


def fill(d: Path, config: LogConfig, sizes: list[int]) -> tuple[PartitionLog, list[tuple[int, int]]]:
    """Append batches of the given record counts; return the log and (file end, next offset) per batch."""
    log = PartitionLog.open(d, config, fsync=False)
    ends = []
    for i, n in enumerate(sizes):
        log.append(batch(n, ts=T0 + i * 10))
        ends.append((log.active_segment.size, log.log_end_offset))
    return log, ends


@pytest.mark.parametrize("shutdown", ["clean", "crash"])
def test_torn_tail_is_truncated_at_last_whole_batch(tmp_path: Path, shutdown: str) -> None:
    d = tmp_path / "t-0"
    log, ends = fill(d, LogConfig(), [3, 2, 5, 4])
    log.close() if shutdown == "clean" else crash(log)
    f = seg_path(d, 0)
    os.truncate(f, ends[2][0] + 30)  # cut inside the 4th batch
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    assert log.log_end_offset == ends[2][1] == 10
    assert f.stat().st_size == ends[2][0]
    assert log.recovered_bytes_truncated == 30
    assert log.append(batch(1)).first_offset == 10
    assert [h.base_offset for h in validate_batches(log.read(0, 1 << 20).records)] == [0, 3, 5, 10]


@pytest.mark.parametrize("shutdown", ["clean", "crash"])
def test_corrupt_byte_in_last_batch_truncates_there(tmp_path: Path, shutdown: str) -> None:
    d = tmp_path / "t-0"
    log, ends = fill(d, LogConfig(), [3, 2, 5])
    log.close() if shutdown == "clean" else crash(log)
    f = seg_path(d, 0)
    data = bytearray(f.read_bytes())
    data[ends[1][0] + 70] ^= 0x55  # inside the payload of the last batch
    f.write_bytes(bytes(data))
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    assert log.log_end_offset == 5
    assert f.stat().st_size == ends[1][0]
    assert log.append(batch(2)).first_offset == 5


def test_crash_recovery_scans_whole_active_segment(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log, ends = fill(d, cfg(index_interval_bytes=50), [2] * 10)
    crash(log)
    f = seg_path(d, 0)
    data = bytearray(f.read_bytes())
    data[ends[3][0] + 65] ^= 0x01  # 5th of 10 batches
    f.write_bytes(bytes(data))
    log = PartitionLog.open(d, cfg(index_interval_bytes=50), fsync=False)
    assert log.log_end_offset == 8 and 0 in log.rebuilt_segments
    # the rebuilt index does not point past the cut
    assert all(p < ends[3][0] for _, p in _index_entries(seg_path(d, 0, ".index")))


def test_clean_shutdown_skips_the_full_scan(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    config = cfg(segment_bytes=600)
    log, _ = fill(d, config, [3] * 20)
    leo = log.log_end_offset
    log.close()
    assert (d / CLEAN_SHUTDOWN_FILE).exists()
    log = PartitionLog.open(d, config, fsync=False)
    assert log.clean_shutdown and log.rebuilt_segments == []
    assert not (d / CLEAN_SHUTDOWN_FILE).exists()  # a crash from now on must not look clean
    assert log.log_end_offset == leo
    crash(log)
    log = PartitionLog.open(d, config, fsync=False)
    # after a crash only the active segment (beyond the recovery point) is rescanned
    assert not log.clean_shutdown
    assert log.rebuilt_segments == [log.segments[-1].base_offset]
    assert log.log_end_offset == leo


def _index_entries(path: Path) -> list[tuple[int, int]]:
    raw = path.read_bytes()
    return [struct.unpack_from(">ii", raw, i) for i in range(0, len(raw), 8)]


@pytest.mark.parametrize("which", [".index", ".timeindex"])
def test_deleted_index_is_rebuilt(tmp_path: Path, which: str) -> None:
    d = tmp_path / "t-0"
    config = cfg(segment_bytes=2000, index_interval_bytes=100)
    log, _ = fill(d, config, [3] * 40)
    before = {s.base_offset: (_index_entries(seg_path(d, s.base_offset, ".index"))) for s in log.segments}
    lookups = {t: log.offset_for_timestamp(t) for t in (T0, T0 + 55, T0 + 201, T0 + 390)}
    reads = {o: log.read(o, 500).records for o in (0, 31, 77, 100)}
    log.close()
    victim = log.segments[1].base_offset
    seg_path(d, victim, which).unlink()
    log = PartitionLog.open(d, config, fsync=False)
    assert victim in log.rebuilt_segments
    assert seg_path(d, victim, which).exists()
    assert _index_entries(seg_path(d, victim, ".index")) == before[victim]
    assert {t: log.offset_for_timestamp(t) for t in lookups} == lookups
    assert {o: log.read(o, 500).records for o in reads} == reads


def test_garbled_index_is_rebuilt(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    config = cfg(index_interval_bytes=100)
    log, _ = fill(d, config, [3] * 30)
    expected = log.read(50, 1000).records
    log.close()
    idx = seg_path(d, 0, ".index")
    good = idx.read_bytes()
    idx.write_bytes(good[:8] + struct.pack(">ii", 0, 10**9) + good[16:])  # points past the log
    log = PartitionLog.open(d, config, fsync=False)
    assert 0 in log.rebuilt_segments and idx.read_bytes() == good
    assert log.read(50, 1000).records == expected
    log.close()
    idx.write_bytes(good + b"\x00\x01\x02")  # not a whole number of entries
    log = PartitionLog.open(d, config, fsync=False)
    assert 0 in log.rebuilt_segments and idx.read_bytes() == good


def test_corruption_in_older_segment_drops_later_segments(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    config = cfg(segment_bytes=600)
    log, _ = fill(d, config, [3] * 20)
    bases = [s.base_offset for s in log.segments]
    assert len(bases) >= 3
    log.close()
    f = seg_path(d, bases[1])
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF
    f.write_bytes(bytes(data))
    seg_path(d, bases[1], ".index").unlink()  # forces a full scan of that segment
    log = PartitionLog.open(d, config, fsync=False)
    assert [s.base_offset for s in log.segments] == bases[:2]
    assert not seg_path(d, bases[2]).exists()
    assert log.log_end_offset < bases[2]
    assert log.append(batch(1)).first_offset == log.log_end_offset - 1


def test_stray_files_are_cleaned(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log, _ = fill(d, LogConfig(), [2])
    log.close()
    (d / "00000000000000000000.log.deleted").write_bytes(b"x")
    (d / "00000000000000000099.index").write_bytes(b"")
    (d / "log-start-offset.tmp").write_bytes(b"1")
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    names = {p.name for p in d.iterdir()}
    assert "00000000000000000000.log.deleted" not in names
    assert "00000000000000000099.index" not in names and "log-start-offset.tmp" not in names
    assert log.log_end_offset == 2


def test_log_start_offset_checkpoint_survives_crash(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log, _ = fill(d, LogConfig(), [5, 5])
    log.delete_records(7)
    crash(log)
    assert (d / LOG_START_OFFSET_FILE).read_text().strip() == "7"
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    assert log.log_start_offset == 7 and log.log_end_offset == 10


def test_empty_and_fully_corrupt_logs(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    log.close()
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    assert log.log_end_offset == 0
    log.append(batch(3))
    crash(log)
    seg_path(d, 0).write_bytes(b"\x00" * 100)
    log = PartitionLog.open(d, LogConfig(), fsync=False)
    assert log.log_end_offset == 0 and seg_path(d, 0).stat().st_size == 0


def test_recovery_with_compressed_and_many_segments(tmp_path: Path) -> None:
    d = tmp_path / "t-0"
    config = cfg(segment_bytes=1500, index_interval_bytes=200)
    log = PartitionLog.open(d, config, fsync=False)
    for i in range(40):
        log.append(batch(4, ts=T0 + i, codec=i % 5, value_size=30))
    expected = log.read(0, 1 << 22).records
    crash(log)
    log = PartitionLog.open(d, config, fsync=False)
    assert log.read(0, 1 << 22).records == expected
    assert log.log_end_offset == 160


# ------------------------------------------------------------------ property


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    counts=st.lists(st.integers(1, 6), min_size=1, max_size=12),
    value_size=st.integers(0, 300),
    codec=st.sampled_from([0, 1, 3]),
    cut_fraction=st.floats(0.0, 1.0),
    clean=st.booleans(),
)
def test_property_recovery_keeps_exactly_the_whole_batches_before_the_cut(
    counts: list[int], value_size: int, codec: int, cut_fraction: float, clean: bool
) -> None:
    config = cfg(index_interval_bytes=128)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "p-0"
        log = PartitionLog.open(d, config, fsync=False)
        for i, n in enumerate(counts):
            log.append(batch(n, ts=T0 + i, value_size=value_size, codec=codec))
        log.close() if clean else crash(log)
        f = seg_path(d, 0)
        original = f.read_bytes()
        cut = int(len(original) * cut_fraction)
        os.truncate(f, cut)

        whole = [(p, h) for p, h in iter_batches(original) if p + h.size <= cut]
        expected_end = whole[-1][0] + whole[-1][1].size if whole else 0
        expected_leo = whole[-1][1].last_offset + 1 if whole else 0

        log = PartitionLog.open(d, config, fsync=False)
        assert log.log_end_offset == expected_leo
        assert f.stat().st_size == expected_end
        assert log.read(0, 1 << 22).records == original[:expected_end]
        info = log.append(batch(2, ts=T0 + 100))
        assert info.first_offset == expected_leo and log.log_end_offset == expected_leo + 2
        if whole:
            probe = whole[len(whole) // 2][1]
            assert log.read(probe.base_offset, 1).first_offset == probe.base_offset
        log.close()
        log = PartitionLog.open(d, config, fsync=False)
        assert log.log_end_offset == expected_leo + 2 and log.rebuilt_segments == []
        log.close()
