"""PartitionLog: appends, offsets, reads, rolls, timestamp lookups, delete-records, restarts."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from kafka.record.memory_records import MemoryRecords

from pykbroker.log import (
    CorruptRecordError,
    InvalidRecordError,
    InvalidTimestampError,
    LogConfig,
    MessageTooLargeError,
    OffsetOutOfRangeError,
    PartitionLog,
    RecordBatchTooLargeError,
)
from pykbroker.protocol.records import (
    Record,
    build_batch,
    decode_records,
    iter_batches,
    parse_batch_header,
    record_offsets_and_timestamps,
    validate_batches,
)

T0 = 1_700_000_000_000


def batch(n: int = 1, *, ts: int = T0, step: int = 1, value_size: int = 10, codec: int = 0, deltas: list[int] | None = None) -> bytes:
    tds = deltas if deltas is not None else [i * step for i in range(n)]
    return build_batch(
        [Record(offset_delta=i, timestamp_delta=tds[i], key=b"k%d" % i, value=b"v" * value_size) for i in range(n)],
        base_timestamp=ts,
        compression=codec,
    )


def cfg(**kafka: str | int) -> LogConfig:
    """Kafka-named configs; segment_bytes sets internal.segment.bytes (Kafka 4: below 1 MiB)."""
    names = {"segment_bytes": "internal.segment.bytes"}
    return LogConfig.from_kafka_configs({names.get(k, k.replace("_", ".")): str(v) for k, v in kafka.items()})


def open_log(tmp_path: Path, config: LogConfig | None = None, name: str = "topic-0") -> PartitionLog:
    return PartitionLog.open(tmp_path / name, config or LogConfig(), fsync=False)


def offsets_in(data: bytes) -> list[int]:
    return [m.offset for b in MemoryRecords(data) for m in b]


# ------------------------------------------------------------------ appending


def test_append_assigns_offsets_and_log_end_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark) == (0, 0, 0)
    infos = [log.append(batch(n)) for n in (1, 5, 2)]
    assert [(i.first_offset, i.last_offset) for i in infos] == [(0, 0), (1, 5), (6, 7)]
    assert log.log_end_offset == 8  # last offset + 1, not base offset + 1
    assert log.high_watermark == 8
    assert infos[1].record_count == 5 and infos[1].batch_count == 1
    assert infos[1].log_append_time == -1
    assert infos[2].max_timestamp == T0 + 1


def test_append_several_batches_in_one_blob(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    info = log.append(batch(3) + batch(4, codec=1))
    assert (info.first_offset, info.last_offset, info.batch_count) == (2, 8, 2)
    data = log.read(0, 1 << 20).records
    assert offsets_in(data) == list(range(9))
    assert [h.base_offset for h in validate_batches(data)] == [0, 2, 5]


def test_stored_bytes_are_the_received_bytes_with_offsets_patched(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(3))
    sent = batch(2, codec=3)
    log.append(sent)
    got = log.read(3, 1 << 20).records
    assert got[8:] == sent[8:] and parse_batch_header(got).base_offset == 3
    seg_file = tmp_path / "topic-0" / "00000000000000000000.log"
    assert seg_file.read_bytes().endswith(got)


def test_empty_append_is_a_no_op(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    info = log.append(b"")
    assert info.first_offset == -1 and log.log_end_offset == 0


def test_rejected_appends_change_nothing(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(max_message_bytes=500))
    log.append(batch(2))
    seg_file = tmp_path / "topic-0" / "00000000000000000000.log"
    before = seg_file.read_bytes()
    bad = bytearray(batch(2))
    bad[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        log.append(batch(1) + bytes(bad))
    with pytest.raises(MessageTooLargeError, match="max.message.bytes=500"):
        log.append(batch(1) + batch(1, value_size=600))
    with pytest.raises(InvalidRecordError, match="magic 1"):
        from pykbroker.protocol.records import build_legacy_message_set

        log.append(build_legacy_message_set([(None, b"x", 1)], magic=1))
    assert seg_file.read_bytes() == before and log.log_end_offset == 2
    assert log.append(batch(1)).first_offset == 2


def test_record_list_larger_than_segment(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(segment_bytes=1000))
    with pytest.raises(RecordBatchTooLargeError):
        log.append(batch(1) + batch(1, value_size=1000))


def test_max_message_bytes_default_counts_log_overhead(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    limit = LogConfig().max_message_bytes
    assert limit == 1048588
    one = batch(1, value_size=0)
    fixed = len(one)
    ok = batch(1, value_size=limit - fixed - 4)  # record and value length varints grow by 2 bytes each
    assert len(ok) == limit
    log.append(ok)
    with pytest.raises(MessageTooLargeError):
        log.append(batch(1, value_size=limit))


def test_follower_style_append_keeps_offsets(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    b = bytearray(batch(3))
    struct.pack_into(">q", b, 0, 10)
    info = log.append(bytes(b), assign_offsets=False)
    assert (info.first_offset, info.last_offset, log.log_end_offset) == (10, 12, 13)
    struct.pack_into(">q", b, 0, 11)
    with pytest.raises(InvalidRecordError, match="out of order"):
        log.append(bytes(b), assign_offsets=False)


def test_control_batches_need_non_strict_append(tmp_path: Path) -> None:
    from pykbroker.protocol.records import build_end_txn_marker

    log = open_log(tmp_path)
    marker = build_end_txn_marker(commit=True, producer_id=1, producer_epoch=0, coordinator_epoch=0)
    with pytest.raises(InvalidRecordError):
        log.append(marker)
    assert log.append(marker, strict=False).first_offset == 0


def test_leader_epoch_is_stamped(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(1), leader_epoch=7)
    (h,) = validate_batches(log.read(0, 1000).records)
    assert h.partition_leader_epoch == 7


def test_log_append_time(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(message_timestamp_type="LogAppendTime"))
    info = log.append(batch(3, ts=5, codec=4), log_append_time_ms=T0 + 42)
    assert info.log_append_time == T0 + 42 and info.max_timestamp == T0 + 42
    data = log.read(0, 1 << 20).records
    (h,) = validate_batches(data)
    assert h.timestamp_type == 1 and h.max_timestamp == T0 + 42
    assert [m.timestamp for b in MemoryRecords(data) for m in b] == [T0 + 42] * 3
    assert log.offset_for_timestamp(T0) == (0, T0 + 42)


def test_create_time_bounds(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(message_timestamp_before_max_ms=1000, message_timestamp_after_max_ms=500))
    log.append(batch(1, ts=T0 - 900), log_append_time_ms=T0)
    with pytest.raises(InvalidTimestampError, match="before"):
        log.append(batch(1, ts=T0 - 2000), log_append_time_ms=T0)
    with pytest.raises(InvalidTimestampError, match="after"):
        log.append(batch(2, ts=T0, step=600), log_append_time_ms=T0)
    assert log.log_end_offset == 1


def test_broker_side_recompression(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(compression_type="gzip"))
    sent = build_batch(
        [Record(i, i, b"k", b"value" * 50) for i in range(4)],
        base_timestamp=T0, producer_id=3, producer_epoch=1, base_sequence=9,
    )
    log.append(sent)
    data = log.read(0, 1 << 20).records
    (h,) = validate_batches(data)
    assert h.compression == 1 and (h.producer_id, h.producer_epoch, h.base_sequence) == (3, 1, 9)
    assert h.max_timestamp == T0 + 3 and h.last_offset == 3
    assert decode_records(data) == decode_records(sent)


# -------------------------------------------------------------------- reading


def test_read_errors_and_empty_at_log_end(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(3))
    with pytest.raises(OffsetOutOfRangeError, match=r"\[0, 3\)"):
        log.read(4, 1000)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 1000)
    r = log.read(3, 1000)
    assert r.records == b"" and r.high_watermark == 3 and r.log_end_offset == 3 and r.next_offset == 3


def test_fetch_in_middle_of_batch_returns_whole_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for n in (4, 4, 4):
        log.append(batch(n))
    r = log.read(6, 1 << 20)
    assert r.first_offset == 4 and r.next_offset == 12
    assert offsets_in(r.records) == list(range(4, 12))


def test_max_bytes_returns_whole_batches_and_min_one_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    sizes = []
    for _ in range(5):
        b = batch(2, value_size=100)
        sizes.append(len(b))
        log.append(b)
    size = sizes[0]
    r = log.read(0, size * 2 + size // 2)
    assert len(r.records) == size * 2 and r.next_offset == 4
    r = log.read(0, size // 2)
    assert len(r.records) == size  # first batch even though larger than max_bytes
    r = log.read(0, size // 2, min_one_batch=False)
    assert r.records == b"" and r.next_offset == 0
    r = log.read(0, 10)  # smaller than a header
    assert len(r.records) == size
    r = log.read(0, 0, min_one_batch=False)
    assert r.records == b""


def test_large_first_batch_with_min_one_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    big = batch(3, value_size=50_000)
    log.append(big)
    log.append(batch(1))
    r = log.read(1, 1000)
    assert len(r.records) == len(big) and r.next_offset == 3


def test_max_offset_bounds_the_read(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    for _ in range(4):
        log.append(batch(2))
    assert offsets_in(log.read(0, 1 << 20, max_offset=4).records) == [0, 1, 2, 3]
    assert log.read(4, 1 << 20, max_offset=4).records == b""


def test_roll_on_segment_bytes_and_reads_across_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(segment_bytes=1000))
    b = batch(3, value_size=50)
    for _ in range(20):
        log.append(b)
    segs = log.segments
    assert len(segs) > 3
    assert all(s.size <= 1000 for s in segs)
    assert [s.base_offset for s in segs] == sorted(s.base_offset for s in segs)
    names = sorted(p.name for p in (tmp_path / "topic-0").glob("*.log"))
    assert names == [f"{s.base_offset:020d}.log" for s in segs]
    # a read fills max_bytes across segment boundaries and returns whole batches
    r = log.read(0, 1 << 20)
    assert offsets_in(r.records) == list(range(60))
    # and one starting inside a later segment returns the containing batch
    mid = segs[2].base_offset + 4
    r = log.read(mid, 2 * len(b))
    assert r.first_offset == mid - mid % 3 and len(r.records) == 2 * len(b)
    # exactly at a segment boundary
    r = log.read(segs[1].base_offset, len(b))
    assert r.first_offset == segs[1].base_offset


def test_roll_on_segment_ms_uses_record_timestamps(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(segment_ms=1000))
    log.append(batch(1, ts=T0))
    log.append(batch(1, ts=T0 + 500))
    assert len(log.segments) == 1
    log.append(batch(1, ts=T0 + 1001))
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_when_index_full(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(segment_index_bytes=24, index_interval_bytes=1))
    for _ in range(12):
        log.append(batch(1))
    assert len(log.segments) > 1
    assert all(s.time_index.entries <= 3 for s in log.segments[:-1])
    assert offsets_in(log.read(0, 1 << 20).records) == list(range(12))


def test_explicit_roll(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2))
    log.roll()
    log.roll()  # rolling an empty active segment is a no-op
    assert [s.base_offset for s in log.segments] == [0, 2]
    log.append(batch(1))
    assert offsets_in(log.read(0, 1 << 20).records) == [0, 1, 2]


def test_index_files_follow_kafka_format(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(index_interval_bytes=200))
    positions = []
    pos = 0
    for i in range(20):
        b = batch(2, ts=T0 + i * 10, value_size=30)
        positions.append((pos, i * 2 + 1))
        pos += len(b)
        log.append(b)
    log.close()
    d = tmp_path / "topic-0"
    raw = (d / "00000000000000000000.index").read_bytes()
    entries = [struct.unpack_from(">ii", raw, i) for i in range(0, len(raw), 8)]
    assert entries and all((p, o) in [(pp, oo) for pp, oo in positions] for o, p in entries)
    data = log_bytes = (d / "00000000000000000000.log").read_bytes()
    by_pos = {p: h for p, h in iter_batches(data)}
    for rel, p in entries:
        assert by_pos[p].last_offset == rel  # entry = (last offset of batch, its position)
    traw = (d / "00000000000000000000.timeindex").read_bytes()
    tentries = [struct.unpack_from(">qi", traw, i) for i in range(0, len(traw), 12)]
    assert tentries[-1] == (T0 + 190 + 1, 39)  # final entry written on close: max ts and its batch's last offset
    assert log_bytes


# ------------------------------------------------------------ timestamp lookups


def test_offset_for_timestamp_finds_first_record_inside_batch(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(index_interval_bytes=1))
    log.append(batch(5, ts=1000, step=10))  # offsets 0-4: 1000..1040
    log.append(batch(5, ts=2000, step=10, codec=2))  # offsets 5-9: 2000..2040
    assert log.offset_for_timestamp(0) == (0, 1000)
    assert log.offset_for_timestamp(1000) == (0, 1000)
    assert log.offset_for_timestamp(1015) == (2, 1020)
    assert log.offset_for_timestamp(1041) == (5, 2000)
    assert log.offset_for_timestamp(2031) == (9, 2040)
    assert log.offset_for_timestamp(2041) is None


def test_offset_for_timestamp_with_out_of_order_timestamps(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(index_interval_bytes=1, segment_bytes=400))
    log.append(batch(3, ts=5000, deltas=[0, -3000, 10]))  # 5000, 2000, 5010
    log.append(batch(2, ts=1000))  # 1000, 1001
    log.append(batch(2, ts=3000))  # 3000, 3001
    log.append(batch(2, ts=6000))
    assert len(log.segments) > 1
    assert log.offset_for_timestamp(1500) == (0, 5000)
    assert log.offset_for_timestamp(5005) == (2, 5010)
    assert log.offset_for_timestamp(5011) == (7, 6000)


def test_offset_for_timestamp_across_segments(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(segment_bytes=600, index_interval_bytes=100))
    for i in range(30):
        log.append(batch(2, ts=T0 + i * 100, step=50))
    assert len(log.segments) > 3
    for i in (0, 7, 18, 29):
        assert log.offset_for_timestamp(T0 + i * 100 + 1) == (2 * i + 1, T0 + i * 100 + 50)
        assert log.offset_for_timestamp(T0 + i * 100) == (2 * i, T0 + i * 100)


def test_offset_lookups_respect_log_start_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(4, ts=1000))
    log.delete_records(2)
    assert log.offset_for_timestamp(0) == (2, 1002)


def test_max_timestamp_offset_is_exact_record(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    assert log.max_timestamp_offset() is None
    log.append(batch(3, ts=1000, deltas=[0, 50, 10], codec=3))
    log.append(batch(2, ts=1020))
    log.append(batch(1, ts=1050))  # ties with offset 1: first one wins
    assert log.max_timestamp_offset() == (1, 1050)
    assert log.fetch_offset_by_timestamp(-3) == (1, 1050)
    assert log.fetch_offset_by_timestamp(-2) == (0, -1)
    assert log.fetch_offset_by_timestamp(-1) == (6, -1)
    assert log.fetch_offset_by_timestamp(-4) == (0, -1)
    assert log.fetch_offset_by_timestamp(1021) == (1, 1050)  # first offset, not closest timestamp
    assert log.fetch_offset_by_timestamp(1051) is None


# ---------------------------------------------------------- delete records


def test_delete_records_advances_log_start_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(segment_bytes=500))
    for _ in range(20):
        log.append(batch(2, value_size=20))
    nsegs = len(log.segments)
    target = log.segments[3].base_offset + 1
    assert log.delete_records(target) == target
    assert log.log_start_offset == target
    assert log.segments[0].base_offset <= target < log.segments[1].base_offset
    assert len(log.segments) == nsegs - 3
    with pytest.raises(OffsetOutOfRangeError):
        log.read(target - 1, 1000)
    r = log.read(target, 1000)
    assert r.first_offset <= target and r.log_start_offset == target
    assert log.delete_records(1) == target  # never moves backwards
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records(log.high_watermark + 1)
    assert log.delete_records(-1) == log.high_watermark
    assert log.read(log.log_end_offset, 100).records == b""


def test_restart_preserves_offsets_and_start_offset(tmp_path: Path) -> None:
    config = cfg(segment_bytes=500)
    log = open_log(tmp_path, config)
    for _ in range(10):
        log.append(batch(3, value_size=20))
    log.delete_records(7)
    expected = log.read(7, 1 << 20).records
    log.close()
    log = open_log(tmp_path, config)
    assert (log.log_start_offset, log.log_end_offset) == (7, 30)
    assert log.read(7, 1 << 20).records == expected
    assert log.append(batch(1)).first_offset == 30
    log.close()


def test_truncate_to(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(segment_bytes=500))
    for i in range(12):
        log.append(batch(2, ts=T0 + i))
    log.truncate_to(10)
    assert log.log_end_offset == 10
    assert all(s.base_offset <= 10 for s in log.segments)
    assert offsets_in(log.read(0, 1 << 20).records) == list(range(10))
    assert log.max_timestamp_offset() == (9, T0 + 5)  # batch 4 holds T0+4, T0+5
    assert log.append(batch(1, ts=T0 + 100)).first_offset == 10
    assert log.max_timestamp_offset() == (10, T0 + 100)
    log.truncate_fully_and_start_at(100)
    assert (log.log_start_offset, log.log_end_offset) == (100, 100)
    assert log.append(batch(1)).first_offset == 100


def test_iter_batches(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(segment_bytes=300))
    for _ in range(8):
        log.append(batch(2))
    got = [(h.base_offset, len(data)) for h, data in log.iter_batches()]
    assert [o for o, _ in got] == list(range(0, 16, 2))
    assert [h.base_offset for h, _ in log.iter_batches(5)] == [4, 6, 8, 10, 12, 14]


# ------------------------------------------------------------------ flushing


def test_flush_messages_fsyncs_every_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    log = PartitionLog.open(tmp_path / "t-0", cfg(flush_messages=1), fsync=True)
    calls.clear()
    log.append(batch(1))
    assert calls
    n = len(calls)
    log.append(batch(1))
    assert len(calls) > n


def test_no_fsync_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=True)
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    for _ in range(10):
        log.append(batch(1))
    assert calls == []
    assert not log.maybe_flush()
    log.flush()
    assert calls


def test_flush_ms(tmp_path: Path) -> None:
    log = open_log(tmp_path, cfg(flush_ms=1000))
    log.append(batch(1))
    now = log._last_flush_ms
    assert not log.maybe_flush(now + 10)
    assert log.maybe_flush(now + 1000)
    assert not log.maybe_flush(now + 5000)  # nothing new to flush


def test_record_offsets_helper_on_stored_batches(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.append(batch(2, ts=10))
    log.append(batch(3, ts=20, codec=1))
    data = log.read(2, 1 << 20).records
    assert record_offsets_and_timestamps(data) == [(2, 20), (3, 21), (4, 22)]


# ----------------------------------------------------------------- property

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def reference_read(blob: bytes, fetch_offset: int, max_bytes: int, max_offset: int, min_one: bool) -> bytes:
    """Naive model of a fetch over the concatenation of all stored batches."""
    if fetch_offset >= max_offset:
        return b""
    start = None
    end = None
    for pos, h in iter_batches(blob):
        if start is None:
            if h.last_offset < fetch_offset:
                continue
            start = pos
        if h.base_offset >= max_offset:
            break
        if pos + h.size - start > max_bytes and not (pos == start and min_one):
            break
        end = pos + h.size
    if start is None or end is None:
        return b""
    return blob[start:end]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    counts=st.lists(st.tuples(st.integers(1, 5), st.integers(0, 300)), min_size=1, max_size=25),
    segment_bytes=st.integers(1700, 6000),
    interval=st.sampled_from([0, 64, 512, 4096]),
    data=st.data(),
)
def test_property_reads_match_a_naive_model(
    tmp_path_factory: pytest.TempPathFactory, counts: list[tuple[int, int]], segment_bytes: int, interval: int, data: st.DataObject
) -> None:
    d = tmp_path_factory.mktemp("prop")
    log = PartitionLog.open(d / "p-0", cfg(segment_bytes=segment_bytes, index_interval_bytes=interval), fsync=False)
    for i, (n, size) in enumerate(counts):
        log.append(batch(n, ts=T0 + i, value_size=size))
    blob = b"".join(s.read_bytes(0, s.size) for s in log.segments)
    leo = log.log_end_offset
    for _ in range(10):
        fetch = data.draw(st.integers(0, leo))
        max_bytes = data.draw(st.integers(0, 3000))
        max_offset = data.draw(st.integers(0, leo + 1))
        min_one = data.draw(st.booleans())
        got = log.read(fetch, max_bytes, min_one_batch=min_one, max_offset=max_offset)
        want = reference_read(blob, fetch, max_bytes, min(max_offset, leo), min_one)
        assert got.records == want
        if want:
            hs = validate_batches(want)
            assert got.first_offset == hs[0].base_offset and got.next_offset == hs[-1].last_offset + 1
    log.close()
