"""Record batches: our codec against itself and against kafka-python's."""

from __future__ import annotations

import struct
import types

import cramjam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

from pykbroker.protocol import records as r
from pykbroker.protocol.compression import xxh32
from pykbroker.protocol.records import (
    BATCH_HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    CorruptRecordError,
    InvalidRecordError,
    Record,
    RecordError,
    build_batch,
    build_legacy_message_set,
    decode_records,
    iter_batches,
    iter_legacy_messages,
    legacy_to_v2_batch,
    parse_batch_header,
    patch_base_offset,
    set_log_append_time,
    validate_batches,
)

CODECS = [0, 1, 2, 3, 4]


@pytest.fixture(autouse=True)
def _kafka_python_snappy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Back kafka-python's optional python-snappy dependency with cramjam's raw codec."""
    import kafka.codec

    shim = types.SimpleNamespace(
        compress=lambda b: bytes(cramjam.snappy.compress_raw(bytes(b))),
        decompress=lambda b: bytes(cramjam.snappy.decompress_raw(bytes(b))),
    )
    monkeypatch.setattr(kafka.codec, "snappy", shim)
    # kafka-python needs the optional xxhash package for magic-0 lz4 frames.
    xxhash_shim = types.SimpleNamespace(
        xxh32=lambda data: types.SimpleNamespace(digest=lambda: struct.pack(">I", xxh32(bytes(data))))
    )
    monkeypatch.setattr(kafka.codec, "xxhash", xxhash_shim)


def sample_records(n: int = 3) -> list[Record]:
    return [
        Record(
            offset_delta=i,
            timestamp_delta=i * 10,
            key=None if i % 3 == 0 else f"key-{i}".encode(),
            value=None if i % 4 == 3 else f"value-{i}".encode() * (i + 1),
            headers=[("h", b"v"), ("null", None)] if i % 2 else [],
        )
        for i in range(n)
    ]


def kafka_python_batch(codec: int, n: int = 5, **producer: int) -> bytes:
    builder = MemoryRecordsBuilder(magic=2, compression_type=codec, batch_size=1 << 20, **producer)
    for i in range(n):
        builder.append(timestamp=1_700_000_000_000 + i, key=f"k{i}".encode(), value=b"v" * (i * 50), headers=[("x", b"y")])
    builder.close()
    return bytes(builder.buffer())


# ------------------------------------------------------------------- header


def test_header_struct_is_61_bytes_and_fields_parse() -> None:
    assert r._HEADER.size == BATCH_HEADER_SIZE == 61 and LOG_OVERHEAD == 12
    batch = build_batch(
        sample_records(4),
        base_offset=42,
        base_timestamp=1_000,
        compression=3,
        producer_id=7,
        producer_epoch=2,
        base_sequence=11,
        is_transactional=True,
        partition_leader_epoch=5,
    )
    h = parse_batch_header(batch)
    assert isinstance(h, BatchHeader)
    assert (h.base_offset, h.magic, h.partition_leader_epoch) == (42, 2, 5)
    assert h.batch_length == len(batch) - 12 and h.size == len(batch)
    assert h.compression == 3 and h.timestamp_type == 0
    assert h.is_transactional and not h.is_control
    assert (h.last_offset_delta, h.last_offset, h.records_count) == (3, 45, 4)
    assert (h.base_timestamp, h.max_timestamp) == (1_000, 1_030)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (7, 2, 11)


def test_parse_header_needs_61_bytes() -> None:
    batch = build_batch(sample_records(1), base_timestamp=0)
    with pytest.raises(InvalidRecordError, match="61"):
        parse_batch_header(batch[:60])
    with pytest.raises(InvalidRecordError):
        parse_batch_header(batch, pos=len(batch) - 10)


# --------------------------------------------------------------- round trips


@pytest.mark.parametrize("codec", CODECS)
def test_build_decode_round_trip(codec: int) -> None:
    recs = sample_records(20)
    batch = build_batch(recs, base_timestamp=123, compression=codec)
    assert validate_batches(batch)[0].compression == codec
    assert decode_records(batch) == recs
    assert decode_records(memoryview(batch)) == recs


@pytest.mark.parametrize("codec", CODECS)
def test_our_batches_read_by_kafka_python(codec: int) -> None:
    recs = sample_records(10)
    batch = build_batch(recs, base_offset=100, base_timestamp=5_000, compression=codec)
    batches = list(MemoryRecords(batch))
    assert len(batches) == 1
    kb = batches[0]
    assert kb.validate_crc()
    assert kb.base_offset == 100 and kb.compression_type == codec
    got = [(m.offset, m.timestamp, m.key, m.value, list(m.headers)) for m in kb]
    want = [(100 + x.offset_delta, 5_000 + x.timestamp_delta, x.key, x.value, x.headers) for x in recs]
    assert got == want


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_batches_validate_and_decode(codec: int) -> None:
    batch = kafka_python_batch(codec, n=6)
    (h,) = validate_batches(batch)
    assert h.compression == codec and h.records_count == 6 and h.last_offset_delta == 5
    recs = decode_records(batch)
    assert [x.key for x in recs] == [f"k{i}".encode() for i in range(6)]
    assert [x.value for x in recs] == [b"v" * (i * 50) for i in range(6)]
    assert all(x.headers == [("x", b"y")] for x in recs)
    assert [h.base_timestamp + x.timestamp_delta for x in recs] == [1_700_000_000_000 + i for i in range(6)]
    assert r.record_offsets_and_timestamps(batch) == [(i, 1_700_000_000_000 + i) for i in range(6)]


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_idempotent_batch(codec: int) -> None:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=True,
        producer_id=99, producer_epoch=3, base_sequence=17, batch_size=1 << 20,
    )
    for i in range(3):
        builder.append(i, timestamp=10 + i, key=None, value=b"txn", headers=[])
    batch = bytes(builder.build())
    (h,) = validate_batches(batch)
    assert (h.producer_id, h.producer_epoch, h.base_sequence, h.is_transactional) == (99, 3, 17, True)
    assert len(decode_records(batch)) == 3


def test_several_concatenated_batches() -> None:
    blob = b"".join(build_batch(sample_records(i + 1), base_offset=10 * i, base_timestamp=0) for i in range(4))
    hs = validate_batches(blob)
    assert [h.records_count for h in hs] == [1, 2, 3, 4]
    positions = [p for p, _ in iter_batches(blob)]
    assert positions[0] == 0 and positions[1] == hs[0].size
    assert validate_batches(b"") == []


# --------------------------------------------------------------- validation


def test_crc_corruption_detected_anywhere_covered() -> None:
    batch = bytearray(build_batch(sample_records(5), base_timestamp=0, compression=0))
    for pos in (21, 30, 60, 61, len(batch) - 1):
        bad = bytearray(batch)
        bad[pos] ^= 0x01
        with pytest.raises(CorruptRecordError, match="CRC"):
            validate_batches(bad)
    # the base offset and leader epoch are outside the CRC
    bad = bytearray(batch)
    bad[3] ^= 0xFF
    bad[13] ^= 0xFF
    validate_batches(bad)


def test_corruption_in_second_batch() -> None:
    a = build_batch(sample_records(2), base_timestamp=0)
    b = bytearray(build_batch(sample_records(2), base_timestamp=0))
    b[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match=f"position {len(a)}"):
        validate_batches(a + bytes(b))


def test_truncated_and_undersized_batches() -> None:
    batch = build_batch(sample_records(2), base_timestamp=0)
    with pytest.raises(CorruptRecordError, match="only"):
        validate_batches(batch[:-1])
    with pytest.raises(CorruptRecordError):
        validate_batches(batch + batch[:20])
    small = bytearray(batch)
    struct.pack_into(">i", small, 8, 20)
    with pytest.raises(CorruptRecordError, match="smaller than the minimum"):
        validate_batches(small)


@pytest.mark.parametrize("magic", [0, 1])
def test_legacy_magic_rejected_by_name(magic: int) -> None:
    blob = build_legacy_message_set([(b"k", b"v", 1)], magic=magic)
    with pytest.raises(InvalidRecordError, match=f"magic {magic}"):
        validate_batches(blob)


def test_unknown_magic_is_corrupt() -> None:
    batch = bytearray(build_batch(sample_records(1), base_timestamp=0))
    batch[16] = 3
    with pytest.raises(CorruptRecordError, match="magic 3"):
        validate_batches(batch)


def _rebuild_crc(buf: bytearray) -> bytearray:
    struct.pack_into(">I", buf, 17, r.batch_crc(buf, 0, len(buf) - 12))
    return buf


def test_strict_count_and_offset_consistency() -> None:
    batch = bytearray(build_batch(sample_records(3), base_timestamp=0))
    struct.pack_into(">i", batch, 23, 5)  # lastOffsetDelta 5 for 3 records
    _rebuild_crc(batch)
    with pytest.raises(InvalidRecordError, match="lastOffsetDelta 5 for 3 records"):
        validate_batches(batch)
    # a compacted batch may have gaps: accepted when not strict
    assert validate_batches(batch, strict=False)[0].last_offset == 5

    struct.pack_into(">i", batch, 23, 1)  # fewer offsets than records is never valid
    _rebuild_crc(batch)
    with pytest.raises(InvalidRecordError):
        validate_batches(batch, strict=False)

    struct.pack_into(">i", batch, 57, -1)
    _rebuild_crc(batch)
    with pytest.raises(InvalidRecordError, match="negative records count"):
        validate_batches(batch, strict=False)


def test_empty_batch_only_accepted_non_strict() -> None:
    empty = build_batch([], base_timestamp=0, last_offset_delta=4)
    with pytest.raises(InvalidRecordError, match="no records"):
        validate_batches(empty)
    (h,) = validate_batches(empty, strict=False)
    assert h.records_count == 0 and h.last_offset == 4
    assert decode_records(empty) == []


def test_control_batches_are_broker_only() -> None:
    marker = r.build_end_txn_marker(commit=True, producer_id=5, producer_epoch=1, coordinator_epoch=9, timestamp=77)
    with pytest.raises(InvalidRecordError, match="control"):
        validate_batches(marker)
    (h,) = validate_batches(marker, strict=False)
    assert h.is_control and h.is_transactional
    (rec,) = decode_records(marker)
    assert r.ControlRecordKeySchema.parse(rec.key).type == r.CONTROL_TYPE_COMMIT
    assert r.EndTxnMarkerSchema.parse(rec.value).coordinator_epoch == 9
    kb = next(iter(MemoryRecords(marker)))
    assert kb.is_control_batch
    assert next(iter(kb)).commit


def test_idempotent_batch_needs_sequence() -> None:
    batch = build_batch(sample_records(1), base_timestamp=0, producer_id=3, producer_epoch=0, base_sequence=-1)
    with pytest.raises(InvalidRecordError, match="sequence"):
        validate_batches(batch)


def test_unknown_codec_in_attributes() -> None:
    batch = bytearray(build_batch(sample_records(1), base_timestamp=0))
    struct.pack_into(">h", batch, 21, 6)
    _rebuild_crc(batch)
    with pytest.raises(InvalidRecordError, match="codec id 6"):
        validate_batches(batch)


def test_too_many_records_claimed() -> None:
    batch = bytearray(build_batch(sample_records(1), base_timestamp=0))
    struct.pack_into(">i", batch, 57, 1000)
    struct.pack_into(">i", batch, 23, 999)
    _rebuild_crc(batch)
    with pytest.raises(InvalidRecordError, match="1000 records"):
        validate_batches(batch)


def test_errors_share_base_and_codes() -> None:
    assert issubclass(CorruptRecordError, RecordError) and issubclass(InvalidRecordError, RecordError)
    assert CorruptRecordError.error_code == 2 and InvalidRecordError.error_code == 87


def test_decode_detects_malformed_records() -> None:
    batch = bytearray(build_batch(sample_records(2), base_timestamp=0))
    struct.pack_into(">i", batch, 57, 3)
    struct.pack_into(">i", batch, 23, 2)
    with pytest.raises(InvalidRecordError):
        decode_records(batch)
    batch = bytearray(build_batch(sample_records(2), base_timestamp=0)) + b"\x00"
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    with pytest.raises(InvalidRecordError, match="left after"):
        decode_records(batch)


# ----------------------------------------------------------------- patching


def test_patch_base_offset_keeps_crc_valid() -> None:
    a = build_batch(sample_records(3), base_timestamp=0, compression=1)
    b = build_batch(sample_records(2), base_timestamp=0)
    blob = bytearray(a + b)
    patch_base_offset(blob, 0, 1_000)
    patch_base_offset(blob, len(a), 1_003)
    hs = validate_batches(blob)
    assert [(h.base_offset, h.last_offset) for h in hs] == [(1_000, 1_002), (1_003, 1_004)]
    mv = memoryview(blob)
    patch_base_offset(mv, 0, 2**40)
    assert parse_batch_header(blob).base_offset == 2**40
    offsets = [m.offset for batch in MemoryRecords(bytes(blob)) for m in batch]
    assert offsets == [2**40, 2**40 + 1, 2**40 + 2, 1_003, 1_004]


@pytest.mark.parametrize("codec", [0, 4])
def test_set_log_append_time(codec: int) -> None:
    batch = bytearray(build_batch(sample_records(3), base_timestamp=10, compression=codec))
    set_log_append_time(batch, 0, 9_999)
    (h,) = validate_batches(batch)
    assert h.timestamp_type == 1 and h.max_timestamp == 9_999 and h.base_timestamp == 10
    assert h.compression == codec
    assert [t for _, t in r.record_offsets_and_timestamps(batch)] == [9_999] * 3
    kb = next(iter(MemoryRecords(bytes(batch))))
    assert [m.timestamp for m in kb] == [9_999] * 3
    assert decode_records(batch) == sample_records(3)


def test_iter_batches_stops_at_incomplete_tail() -> None:
    a = build_batch(sample_records(1), base_timestamp=0)
    b = build_batch(sample_records(2), base_timestamp=0)
    blob = a + b
    for cut in (len(a), len(a) + 5, len(a) + 61, len(blob) - 1):
        assert [p for p, _ in iter_batches(blob[:cut])] == [0]
    assert [p for p, _ in iter_batches(blob)] == [0, len(a)]
    assert [p for p, _ in iter_batches(blob, len(a))] == [len(a)]
    bad = bytearray(blob)
    struct.pack_into(">i", bad, len(a) + 8, 3)
    with pytest.raises(CorruptRecordError):
        list(iter_batches(bad))


# ------------------------------------------------------------------- legacy


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("codec", [0, 1, 2, 3])
def test_legacy_round_trip_and_kafka_python_interop(magic: int, codec: int) -> None:
    entries = [(None if i == 0 else b"k%d" % i, b"value-%d" % i, 1_000 + i) for i in range(5)]
    ours = build_legacy_message_set(entries, magic=magic, compression=codec, base_offset=50)
    msgs = list(iter_legacy_messages(ours))
    assert [m.offset for m in msgs] == list(range(50, 55))
    assert [(m.key, m.value) for m in msgs] == [(k, v) for k, v, _ in entries]
    assert [m.timestamp for m in msgs] == ([-1] * 5 if magic == 0 else [t for _, _, t in entries])
    # kafka-python reads our message set
    theirs_view = [(m.key, m.value) for batch in MemoryRecords(ours) for m in batch]
    assert theirs_view == [(k, v) for k, v, _ in entries]
    # and we read kafka-python's
    builder = LegacyRecordBatchBuilder(magic=magic, compression_type=codec, batch_size=1 << 20)
    for i, (k, v, t) in enumerate(entries):
        builder.append(i, timestamp=t, key=k, value=v)
    theirs = bytes(builder.build())
    assert [(m.key, m.value) for m in iter_legacy_messages(theirs)] == [(k, v) for k, v, _ in entries]


def test_legacy_crc_corruption() -> None:
    blob = bytearray(build_legacy_message_set([(b"k", b"v", 5)], magic=1))
    blob[-1] ^= 1
    with pytest.raises(CorruptRecordError, match="CRC-32"):
        list(iter_legacy_messages(blob))


def test_legacy_incomplete_tail_stops() -> None:
    blob = build_legacy_message_set([(b"a", b"1", 1), (b"b", b"2", 2)], magic=1)
    assert len(list(iter_legacy_messages(blob[:-3]))) == 1


@pytest.mark.parametrize("codec", [0, 1, 3])
def test_legacy_to_v2(codec: int) -> None:
    entries = [(b"k%d" % i, b"v%d" % i, 2_000 + 3 * i) for i in range(4)]
    blob = build_legacy_message_set(entries, magic=1, compression=codec, base_offset=9)
    batch = legacy_to_v2_batch(blob)
    (h,) = validate_batches(batch)
    assert h.compression == codec and h.records_count == 4 and h.base_offset == 0
    assert h.base_timestamp == 2_000 and h.max_timestamp == 2_009
    recs = decode_records(batch)
    assert [(x.key, x.value, x.offset_delta, h.base_timestamp + x.timestamp_delta) for x in recs] == [
        (k, v, i, t) for i, (k, v, t) in enumerate(entries)
    ]
    with pytest.raises(CorruptRecordError):
        legacy_to_v2_batch(blob[:-1])


def test_legacy_v0_to_v2_has_no_timestamps() -> None:
    batch = legacy_to_v2_batch(build_legacy_message_set([(None, b"x", 0), (None, b"y", 0)], magic=0, compression=2))
    (h,) = validate_batches(batch)
    assert h.base_timestamp == -1 and h.max_timestamp == -1
    assert [x.value for x in decode_records(batch)] == [b"x", b"y"]


def test_legacy_log_append_time_wrapper() -> None:
    blob = build_legacy_message_set(
        [(None, b"x", 1), (None, b"y", 2)], magic=1, compression=1, timestamp_type=1, log_append_time=777
    )
    msgs = list(iter_legacy_messages(blob))
    assert [m.timestamp for m in msgs] == [777, 777] and all(m.timestamp_type == 1 for m in msgs)
    (h,) = validate_batches(legacy_to_v2_batch(blob))
    assert h.timestamp_type == 1 and h.max_timestamp == 777


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("codec", [0, 1, 4])
def test_v2_to_legacy(magic: int, codec: int) -> None:
    recs = sample_records(4)
    blob = build_batch(recs, base_offset=30, base_timestamp=100, compression=codec) + r.build_end_txn_marker(
        commit=False, producer_id=1, producer_epoch=0, coordinator_epoch=0, base_offset=34
    )
    legacy = r.v2_to_legacy_message_set(blob, magic=magic)
    msgs = list(iter_legacy_messages(legacy))
    assert [m.offset for m in msgs] == [30, 31, 32, 33]
    assert [(m.key, m.value) for m in msgs] == [(x.key, x.value) for x in recs]
    if magic == 1:
        assert [m.timestamp for m in msgs] == [100 + x.timestamp_delta for x in recs]


# --------------------------------------------------------------- properties

header_st = st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=20)))
record_st = st.builds(
    Record,
    offset_delta=st.just(0),
    timestamp_delta=st.integers(-(2**40), 2**40),
    key=st.one_of(st.none(), st.binary(max_size=50)),
    value=st.one_of(st.none(), st.binary(max_size=300)),
    headers=st.lists(header_st, max_size=3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recs=st.lists(record_st, min_size=1, max_size=15),
    codec=st.sampled_from(CODECS),
    base_offset=st.integers(0, 2**62),
    base_ts=st.integers(0, 2**45),
)
def test_property_build_decode_round_trip(recs: list[Record], codec: int, base_offset: int, base_ts: int) -> None:
    for i, rec in enumerate(recs):
        rec.offset_delta = i
    batch = build_batch(recs, base_offset=base_offset, base_timestamp=base_ts, compression=codec)
    (h,) = validate_batches(batch)
    assert h.last_offset == base_offset + len(recs) - 1
    assert h.max_timestamp == base_ts + max(x.timestamp_delta for x in recs)
    assert decode_records(batch) == recs
    kb = next(iter(MemoryRecords(batch)))
    assert [(m.offset, m.key, m.value) for m in kb] == [(base_offset + i, x.key, x.value) for i, x in enumerate(recs)]


@pytest.mark.parametrize("src", CODECS)
@pytest.mark.parametrize("dst", CODECS)
def test_recompress_batch(src: int, dst: int) -> None:
    recs = sample_records(7)
    batch = build_batch(recs, base_offset=5, base_timestamp=100, compression=src, producer_id=4,
                        producer_epoch=1, base_sequence=3, is_transactional=True)
    out = r.recompress_batch(batch, dst)
    (h,) = validate_batches(out)
    (orig,) = validate_batches(batch)
    assert h.compression == dst
    assert h._replace(batch_length=0, crc=0, attributes=0) == orig._replace(batch_length=0, crc=0, attributes=0)
    assert h.attributes & ~7 == orig.attributes & ~7
    assert decode_records(out) == recs


@settings(max_examples=200, deadline=None)
@given(
    codec=st.sampled_from([0, 1, 3]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_property_garbled_records_only_raise_record_errors(codec: int, edits: list[tuple[int, int]]) -> None:
    batch = bytearray(build_batch(sample_records(5), base_timestamp=0, compression=codec))
    for where, value in edits:
        batch[61 + where % (len(batch) - 61)] = value
    for fn in (decode_records, r.record_offsets_and_timestamps):
        try:
            fn(batch)
        except RecordError:
            pass
