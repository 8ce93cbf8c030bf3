"""Kafka record batches (magic 2) and legacy message sets (magic 0/1), sans I/O.

RecordBatch v2 (magic 2) on the wire and on disk, big-endian; byte offset: field
     0  baseOffset            int64   first offset of the batch (broker-assigned)
     8  batchLength           int32   bytes after this field (total size - 12)
    12  partitionLeaderEpoch  int32   not covered by the CRC (stamped by the leader)
    16  magic                 int8    2
    17  crc                   uint32  CRC-32C of bytes [21, end): attributes..last record
    21  attributes            int16   bits 0-2 codec, 3 timestamp type, 4 transactional,
                                      5 control, 6 has delete horizon (compaction)
    23  lastOffsetDelta       int32   offset of last record - baseOffset
    27  baseTimestamp         int64   timestamp of first record (delete horizon if bit 6)
    35  maxTimestamp          int64   max record timestamp, or the LogAppendTime
    43  producerId            int64   -1 when not idempotent
    51  producerEpoch         int16
    53  baseSequence          int32   -1 when not idempotent
    57  recordsCount          int32
    61  records               [Record] possibly compressed as one blob (codec != 0)

Record (inside the records area; varint = zigzag LEB128, 32-bit; varlong = 64-bit)
        length                varint  bytes that follow
        attributes            int8    unused, 0
        timestampDelta        varlong record timestamp - baseTimestamp
        offsetDelta           varint  record offset - baseOffset
        keyLength             varint  -1 = null key
        key                   bytes
        valueLength           varint  -1 = null value
        value                 bytes
        headersCount          varint
        headers               [headerKeyLength varint, headerKey utf8,
                               headerValueLength varint (-1 = null), headerValue]

Legacy message (magic 0 / magic 1), CRC-32 (zlib) over magic..end:
        offset int64 | messageSize int32 | crc uint32 | magic int8 | attributes int8 |
        [timestamp int64, magic 1 only] | keyLength int32 | key | valueLength int32 | value
    A compressed legacy message is a "wrapper" whose value is a compressed
    message set; magic 1 inner offsets are relative (0..n-1) and the wrapper
    carries the absolute offset of the last inner message.

The hot path (header parse, validation/CRC, offset and timestamp patching)
works on the raw buffer with one precompiled ``struct.Struct`` and
``crc32c``; records are never re-encoded there. Record-level encoding and
decoding (tests, control records, the internal offsets topic, legacy
conversion) uses the declarative ``construct`` schemas below.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import crc32c as _crc32c
from construct import (
    Construct,
    ConstructError,
    If,
    Int8sb,
    Int16sb,
    Int32sb,
    Int64sb,
    PascalString,
    Prefixed,
    PrefixedArray,
    Struct,
    Terminated,
    ZigZag,
    this,
)
from construct.core import stream_read, stream_write

from pykbroker.protocol import compression as _compression

Buffer = bytes | bytearray | memoryview

# ----------------------------------------------------------------- constants

BATCH_HEADER_SIZE: Final = 61
LOG_OVERHEAD: Final = 12  # baseOffset + batchLength
MAGIC_V0: Final = 0
MAGIC_V1: Final = 1
MAGIC_V2: Final = 2
CURRENT_MAGIC: Final = MAGIC_V2

NO_TIMESTAMP: Final = -1
NO_PRODUCER_ID: Final = -1
NO_PRODUCER_EPOCH: Final = -1
NO_SEQUENCE: Final = -1
NO_PARTITION_LEADER_EPOCH: Final = -1

TIMESTAMP_CREATE_TIME: Final = 0
TIMESTAMP_LOG_APPEND_TIME: Final = 1

COMPRESSION_MASK: Final = 0x07
TIMESTAMP_TYPE_MASK: Final = 0x08
TRANSACTIONAL_MASK: Final = 0x10
CONTROL_MASK: Final = 0x20
DELETE_HORIZON_MASK: Final = 0x40

# Byte offsets of header fields inside a v2 batch.
BASE_OFFSET_OFFSET: Final = 0
LENGTH_OFFSET: Final = 8
PARTITION_LEADER_EPOCH_OFFSET: Final = 12
MAGIC_OFFSET: Final = 16
CRC_OFFSET: Final = 17
ATTRIBUTES_OFFSET: Final = 21
LAST_OFFSET_DELTA_OFFSET: Final = 23
BASE_TIMESTAMP_OFFSET: Final = 27
MAX_TIMESTAMP_OFFSET: Final = 35
RECORDS_COUNT_OFFSET: Final = 57
# Smallest legal batchLength: the header minus the 12-byte log overhead.
MIN_BATCH_LENGTH: Final = BATCH_HEADER_SIZE - LOG_OVERHEAD
# Smallest possible encoded record (length, attrs, ts, offset, null key/value, 0 headers).
MIN_RECORD_SIZE: Final = 7

_HEADER: Final = struct.Struct(">qiiBIhiqqqhii")
_INT16: Final = struct.Struct(">h")
_INT32: Final = struct.Struct(">i")
_UINT32: Final = struct.Struct(">I")
_INT64: Final = struct.Struct(">q")
_OFFSET_LENGTH: Final = struct.Struct(">qi")

# Legacy (magic 0/1) message layout.
LEGACY_CRC_OFFSET: Final = 12
LEGACY_MAGIC_OFFSET: Final = 16
LEGACY_RECORD_OVERHEAD_V0: Final = 14  # crc + magic + attributes + key len + value len
LEGACY_RECORD_OVERHEAD_V1: Final = 22  # + timestamp
_LEGACY_HEAD: Final = struct.Struct(">qiI")  # offset, messageSize, crc

_crc32c_fn = _crc32c.crc32c


# -------------------------------------------------------------------- errors


class RecordError(Exception):
    """Invalid record data in a produce request or on disk."""

    error_code: int = 87


class CorruptRecordError(RecordError):
    """Bytes do not check out (CRC, impossible sizes): Kafka CORRUPT_MESSAGE (2)."""

    error_code = 2


class InvalidRecordError(RecordError):
    """Well-formed bytes that Kafka would refuse: Kafka INVALID_RECORD (87)."""

    error_code = 87


# -------------------------------------------------------------- batch header


class BatchHeader(NamedTuple):
    """The fixed 61-byte header of a v2 record batch."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        return (self.attributes & TIMESTAMP_TYPE_MASK) >> 3

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def size(self) -> int:
        """Total bytes of the batch including the 12-byte offset/length prefix."""
        return self.batch_length + LOG_OVERHEAD


def parse_batch_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Parse the 61-byte header at ``pos`` without touching the payload."""
    if len(buf) - pos < BATCH_HEADER_SIZE:
        raise InvalidRecordError(
            f"record batch header needs {BATCH_HEADER_SIZE} bytes, only {max(0, len(buf) - pos)} available"
        )
    return BatchHeader._make(_HEADER.unpack_from(buf, pos))


def batch_crc(buf: Buffer, pos: int, batch_length: int) -> int:
    """CRC-32C of the batch at ``pos`` as Kafka computes it (attributes..end)."""
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    return _crc32c_fn(mv[pos + ATTRIBUTES_OFFSET : pos + LOG_OVERHEAD + batch_length])


def _check_batch(mv: memoryview, pos: int, strict: bool) -> BatchHeader:
    """Validate one v2 batch at ``pos`` of ``mv``; return its header."""
    avail = len(mv) - pos
    if avail < MAGIC_OFFSET + 1:
        raise CorruptRecordError(
            f"{avail} trailing bytes at position {pos} are too few for a record batch"
        )
    magic = mv[pos + MAGIC_OFFSET]
    if magic != MAGIC_V2:
        if magic in (MAGIC_V0, MAGIC_V1):
            raise InvalidRecordError(
                f"record batch at position {pos} has magic {magic} (legacy message format); "
                "produce v3+ requires magic 2 record batches"
            )
        raise CorruptRecordError(f"record batch at position {pos} has unknown magic {magic}")
    _, batch_length = _OFFSET_LENGTH.unpack_from(mv, pos)
    if batch_length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"record batch at position {pos} has batchLength {batch_length}, "
            f"smaller than the minimum {MIN_BATCH_LENGTH}"
        )
    if batch_length > avail - LOG_OVERHEAD:
        raise CorruptRecordError(
            f"record batch at position {pos} has batchLength {batch_length} but only "
            f"{avail - LOG_OVERHEAD} bytes follow"
        )
    h = BatchHeader._make(_HEADER.unpack_from(mv, pos))
    end = pos + LOG_OVERHEAD + batch_length
    crc = _crc32c_fn(mv[pos + ATTRIBUTES_OFFSET : end])
    if crc != h.crc:
        raise CorruptRecordError(
            f"record batch at position {pos} (base offset {h.base_offset}) is corrupt: "
            f"CRC-32C is {crc:#010x} but the header says {h.crc:#010x}"
        )
    count = h.records_count
    if count < 0:
        raise InvalidRecordError(f"record batch at position {pos} has negative records count {count}")
    if h.last_offset_delta < 0:
        raise InvalidRecordError(
            f"record batch at position {pos} has negative lastOffsetDelta {h.last_offset_delta}"
        )
    codec = h.attributes & COMPRESSION_MASK
    if codec > _compression.ZSTD:
        raise InvalidRecordError(f"record batch at position {pos} uses unknown compression codec id {codec}")
    if codec == _compression.NONE and count * MIN_RECORD_SIZE > batch_length - MIN_BATCH_LENGTH:
        raise InvalidRecordError(
            f"record batch at position {pos} claims {count} records in "
            f"{batch_length - MIN_BATCH_LENGTH} bytes"
        )
    if strict:
        if count == 0:
            raise InvalidRecordError(f"record batch at position {pos} has no records")
        if h.last_offset_delta != count - 1:
            raise InvalidRecordError(
                f"record batch at position {pos} is inconsistent: lastOffsetDelta "
                f"{h.last_offset_delta} for {count} records"
            )
        if h.attributes & CONTROL_MASK:
            raise InvalidRecordError("clients are not allowed to write control records")
        if h.producer_id >= 0 and h.base_sequence < 0:
            raise InvalidRecordError(
                f"record batch at position {pos} has producer id {h.producer_id} but "
                f"invalid base sequence {h.base_sequence}"
            )
        if h.attributes & TRANSACTIONAL_MASK and h.producer_id < 0:
            raise InvalidRecordError(f"transactional record batch at position {pos} has no producer id")
    elif h.last_offset_delta < count - 1:
        raise InvalidRecordError(
            f"record batch at position {pos} has lastOffsetDelta {h.last_offset_delta} "
            f"for {count} records"
        )
    return h


def validate_batch_at(buf: Buffer, pos: int = 0, *, strict: bool = True) -> BatchHeader:
    """Validate the single v2 batch at ``pos`` (which may be followed by more data)."""
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    return _check_batch(mv, pos, strict)


def validate_batches(buf: Buffer, *, strict: bool = True) -> list[BatchHeader]:
    """Validate a records blob holding zero or more concatenated v2 batches.

    Checks magic, lengths against the buffer, the CRC-32C and count/offset
    consistency, without copying or re-encoding anything.

    ``strict`` applies what Kafka demands of *client* produce data: at least
    one record, ``lastOffsetDelta == recordsCount - 1``, no control batches,
    a base sequence for idempotent batches. ``strict=False`` accepts what a
    log may legitimately hold (empty or gapped batches left by compaction,
    control batches written by the broker itself).
    """
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    headers: list[BatchHeader] = []
    pos, n = 0, len(mv)
    while pos < n:
        h = _check_batch(mv, pos, strict)
        headers.append(h)
        pos += h.batch_length + LOG_OVERHEAD
    return headers


def patch_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Overwrite a batch's base offset in place (the CRC does not cover it)."""
    _INT64.pack_into(buf, pos + BASE_OFFSET_OFFSET, base_offset)


def patch_partition_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Overwrite a batch's partition leader epoch in place (not CRC-covered)."""
    _INT32.pack_into(buf, pos + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def set_log_append_time(buf: bytearray | memoryview, pos: int, timestamp_ms: int) -> None:
    """Stamp LogAppendTime on the batch at ``pos`` and recompute its CRC.

    Like Kafka, only the timestamp-type bit and maxTimestamp change; readers
    then take maxTimestamp as every record's timestamp.
    """
    (attrs,) = _INT16.unpack_from(buf, pos + ATTRIBUTES_OFFSET)
    _INT16.pack_into(buf, pos + ATTRIBUTES_OFFSET, attrs | TIMESTAMP_TYPE_MASK)
    _INT64.pack_into(buf, pos + MAX_TIMESTAMP_OFFSET, timestamp_ms)
    (batch_length,) = _INT32.unpack_from(buf, pos + LENGTH_OFFSET)
    _UINT32.pack_into(buf, pos + CRC_OFFSET, batch_crc(buf, pos, batch_length))


def iter_batches(buf: Buffer, pos: int = 0) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` of each whole batch from ``pos``.

    Stops silently at an incomplete tail (as a reader of a partially written
    log or a size-limited fetch must); an impossible batch length raises
    CorruptRecordError since nothing after it can be located.
    """
    n = len(buf)
    unpack = _HEADER.unpack_from
    make = BatchHeader._make
    while pos + BATCH_HEADER_SIZE <= n:
        h = make(unpack(buf, pos))
        if h.batch_length < MIN_BATCH_LENGTH:
            raise CorruptRecordError(
                f"record batch at position {pos} has batchLength {h.batch_length}, "
                f"smaller than the minimum {MIN_BATCH_LENGTH}"
            )
        end = pos + LOG_OVERHEAD + h.batch_length
        if end > n:
            return
        yield pos, h
        pos = end


# ------------------------------------------------------- record schemas (construct)


class NullableBytes(Construct):  # type: ignore[misc]
    """Length-prefixed bytes where a negative length means null (Kafka ``BYTES``/varint)."""

    def __init__(self, lengthfield: Construct) -> None:
        super().__init__()
        self.lengthfield = lengthfield

    def _parse(self, stream: Any, context: Any, path: str) -> bytes | None:
        n = self.lengthfield._parsereport(stream, context, path)
        if n < 0:
            return None
        return stream_read(stream, n, path)

    def _build(self, obj: bytes | None, stream: Any, context: Any, path: str) -> bytes | None:
        if obj is None:
            self.lengthfield._build(-1, stream, context, path)
            return obj
        data = bytes(obj)
        self.lengthfield._build(len(data), stream, context, path)
        stream_write(stream, data, len(data), path)
        return obj

    def _emitparse(self, code: Any) -> str:
        fname = f"parse_nullable_bytes_{code.allocateId()}"
        code.append(f"""
            def {fname}(io, this):
                n = {self.lengthfield._compileparse(code)}
                if n < 0:
                    return None
                data = io.read(n)
                if len(data) != n:
                    raise StreamError("stream read less than specified amount, expected %d, found %d" % (n, len(data)))
                return data
        """)
        return f"{fname}(io, this)"


RecordHeaderSchema = Struct(
    "key" / PascalString(ZigZag, "utf8"),
    "value" / NullableBytes(ZigZag),
)

RecordBodySchema = Struct(
    "attributes" / Int8sb,
    "timestamp_delta" / ZigZag,
    "offset_delta" / ZigZag,
    "key" / NullableBytes(ZigZag),
    "value" / NullableBytes(ZigZag),
    "headers" / PrefixedArray(ZigZag, RecordHeaderSchema),
)

#: One v2 record: varint length prefix + body.
RecordSchema = Prefixed(ZigZag, RecordBodySchema)

_compiled_record_schema: Any = None


def _record_parser() -> Any:
    """``RecordSchema`` compiled by construct (about 3x faster to parse), built on first use."""
    global _compiled_record_schema
    if _compiled_record_schema is None:
        _compiled_record_schema = RecordSchema.compile()
    return _compiled_record_schema

#: Key of a control record (transaction markers): version, type (0 abort, 1 commit).
ControlRecordKeySchema = Struct("version" / Int16sb, "type" / Int16sb)
#: Value of an end-transaction marker control record.
EndTxnMarkerSchema = Struct("version" / Int16sb, "coordinator_epoch" / Int32sb)

CONTROL_TYPE_ABORT: Final = 0
CONTROL_TYPE_COMMIT: Final = 1

#: Legacy message after offset/size/crc: magic..value.
LegacyMessageBodySchema = Struct(
    "magic" / Int8sb,
    "attributes" / Int8sb,
    "timestamp" / If(this.magic >= 1, Int64sb),
    "key" / NullableBytes(Int32sb),
    "value" / NullableBytes(Int32sb),
    Terminated,
)


@dataclass(slots=True)
class Record:
    """One record of a v2 batch, with offset and timestamp relative to the batch."""

    offset_delta: int = 0
    timestamp_delta: int = 0
    key: bytes | None = None
    value: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)


def encode_record(record: Record) -> bytes:
    """Encode one record (length-prefixed) with the construct schema."""
    try:
        return RecordSchema.build(
            {
                "attributes": 0,
                "timestamp_delta": record.timestamp_delta,
                "offset_delta": record.offset_delta,
                "key": record.key,
                "value": record.value,
                "headers": [{"key": k, "value": v} for k, v in record.headers],
            }
        )
    except ConstructError as exc:
        raise InvalidRecordError(f"cannot encode record: {exc}") from exc


def build_batch(
    records: Sequence[Record],
    *,
    base_offset: int = 0,
    base_timestamp: int | None = None,
    compression: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    is_transactional: bool = False,
    is_control: bool = False,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    timestamp_type: int = TIMESTAMP_CREATE_TIME,
    max_timestamp: int | None = None,
    last_offset_delta: int | None = None,
) -> bytes:
    """Encode a complete v2 batch (header, CRC, optionally compressed records).

    ``base_timestamp`` defaults to now. ``max_timestamp`` defaults to the
    largest record timestamp (pass the append time for LogAppendTime).
    ``last_offset_delta`` defaults to the largest record offset delta (pass it
    explicitly for empty batches that must cover an offset range).
    """
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    body = b"".join(encode_record(r) for r in records)
    payload = _compression.compress(compression, body) if compression else body
    if last_offset_delta is None:
        last_offset_delta = max((r.offset_delta for r in records), default=0)
    if max_timestamp is None:
        max_timestamp = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    attributes = (
        (compression & COMPRESSION_MASK)
        | (TIMESTAMP_TYPE_MASK if timestamp_type == TIMESTAMP_LOG_APPEND_TIME else 0)
        | (TRANSACTIONAL_MASK if is_transactional else 0)
        | (CONTROL_MASK if is_control else 0)
    )
    buf = bytearray(BATCH_HEADER_SIZE + len(payload))
    _HEADER.pack_into(
        buf,
        0,
        base_offset,
        MIN_BATCH_LENGTH + len(payload),
        partition_leader_epoch,
        MAGIC_V2,
        0,
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    buf[BATCH_HEADER_SIZE:] = payload
    _UINT32.pack_into(buf, CRC_OFFSET, _crc32c_fn(memoryview(buf)[ATTRIBUTES_OFFSET:]))
    return bytes(buf)


def _records_payload(mv: memoryview, h: BatchHeader) -> Buffer:
    end = LOG_OVERHEAD + h.batch_length
    if len(mv) < end:
        raise InvalidRecordError(f"record batch needs {end} bytes, only {len(mv)} given")
    payload = mv[BATCH_HEADER_SIZE:end]
    if h.compression:
        return _compression.decompress(h.compression, payload)
    return payload


def decode_records(batch: Buffer) -> list[Record]:
    """Decode (decompressing as needed) the records of the batch at the start of ``batch``."""
    mv = batch if isinstance(batch, memoryview) else memoryview(batch)
    h = parse_batch_header(mv)
    if h.magic != MAGIC_V2:
        raise InvalidRecordError(f"cannot decode records of magic {h.magic} as a v2 batch")
    payload = _records_payload(mv, h)
    stream = io.BytesIO(payload)
    parse = _record_parser().parse_stream
    try:
        parsed = [parse(stream) for _ in range(h.records_count)]
    except (ConstructError, UnicodeDecodeError, struct.error, ValueError, OverflowError) as exc:
        raise InvalidRecordError(f"malformed records in batch at base offset {h.base_offset}: {exc}") from exc
    if stream.tell() != len(payload):
        raise InvalidRecordError(
            f"batch at base offset {h.base_offset} has {len(payload) - stream.tell()} bytes "
            f"left after its {h.records_count} records"
        )
    return [
        Record(
            offset_delta=p.offset_delta,
            timestamp_delta=p.timestamp_delta,
            key=p.key,
            value=p.value,
            headers=[(hd.key, hd.value) for hd in p.headers],
        )
        for p in parsed
    ]


def _read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Decode a zigzag varint at ``pos``; return (value, new position)."""
    shift = 0
    raw = 0
    while True:
        try:
            b = buf[pos]
        except IndexError:
            raise InvalidRecordError("truncated varint in record data") from None
        pos += 1
        raw |= (b & 0x7F) << shift
        if not b & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise InvalidRecordError("varint longer than 10 bytes in record data")


class RecordHead(NamedTuple):
    """Where one record sits in a (decompressed) records area, with its leading varints."""

    start: int
    end: int
    #: Position of timestampDelta inside the record, and of the offsetDelta after it.
    ts_pos: int
    ts_end: int
    timestamp_delta: int
    offset_delta: int
    #: Position after offsetDelta (the key length).
    rest: int


def iter_record_heads(payload: Buffer, h: BatchHeader) -> Iterator[RecordHead]:
    """The leading varints of each of the batch's records, without decoding keys or values."""
    pos = 0
    n = len(payload)
    for _ in range(h.records_count):
        length, body = _read_varint(payload, pos)
        end = body + length
        if length < 0 or end > n:
            raise InvalidRecordError(f"bad record length {length} in batch at base offset {h.base_offset}")
        ts_delta, ts_end = _read_varint(payload, body + 1)  # skip the attributes byte
        off_delta, rest = _read_varint(payload, ts_end)
        yield RecordHead(pos, end, body + 1, ts_end, ts_delta, off_delta, rest)
        pos = end


def record_offsets_and_timestamps(batch: Buffer) -> list[tuple[int, int]]:
    """Absolute ``(offset, timestamp)`` of every record of the batch at the start of ``batch``.

    A fast path for timestamp lookups: only the leading varints of each
    record are read. LogAppendTime batches report maxTimestamp for every
    record, as Kafka's readers do.
    """
    mv = batch if isinstance(batch, memoryview) else memoryview(batch)
    h = parse_batch_header(mv)
    base_offset, base_ts = h.base_offset, h.base_timestamp
    log_append = h.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
    return [(base_offset + r.offset_delta, h.max_timestamp if log_append else base_ts + r.timestamp_delta)
            for r in iter_record_heads(_records_payload(mv, h), h)]


def recompress_batch(batch: Buffer, codec: int) -> bytes:
    """Re-encode the records area of the batch at the start of ``batch`` with ``codec``.

    The records themselves are not parsed: the (decompressed) records area
    is the same byte string whatever the codec, so only the payload, the
    codec bits, the batch length and the CRC change (Kafka's broker-side
    ``compression.type``).
    """
    mv = batch if isinstance(batch, memoryview) else memoryview(batch)
    h = parse_batch_header(mv)
    raw = _records_payload(mv, h)
    payload = _compression.compress(codec, raw) if codec else bytes(raw)
    out = bytearray(BATCH_HEADER_SIZE + len(payload))
    out[:BATCH_HEADER_SIZE] = mv[:BATCH_HEADER_SIZE]
    out[BATCH_HEADER_SIZE:] = payload
    _INT32.pack_into(out, LENGTH_OFFSET, MIN_BATCH_LENGTH + len(payload))
    _INT16.pack_into(out, ATTRIBUTES_OFFSET, (h.attributes & ~COMPRESSION_MASK) | (codec & COMPRESSION_MASK))
    _UINT32.pack_into(out, CRC_OFFSET, _crc32c_fn(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return bytes(out)


def build_end_txn_marker(
    *,
    commit: bool,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    timestamp: int | None = None,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytes:
    """A control batch holding one COMMIT or ABORT transaction marker."""
    ts = int(time.time() * 1000) if timestamp is None else timestamp
    key = ControlRecordKeySchema.build(
        {"version": 0, "type": CONTROL_TYPE_COMMIT if commit else CONTROL_TYPE_ABORT}
    )
    value = EndTxnMarkerSchema.build({"version": 0, "coordinator_epoch": coordinator_epoch})
    return build_batch(
        [Record(key=key, value=value)],
        base_offset=base_offset,
        base_timestamp=ts,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        is_transactional=True,
        is_control=True,
        partition_leader_epoch=partition_leader_epoch,
    )


# ------------------------------------------------------------- legacy (magic 0/1)


@dataclass(slots=True)
class LegacyMessage:
    """One magic 0/1 message (after decompression: an inner message with absolute offset)."""

    offset: int
    magic: int
    attributes: int
    timestamp: int  # NO_TIMESTAMP for magic 0
    key: bytes | None
    value: bytes | None

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def timestamp_type(self) -> int:
        return (self.attributes & TIMESTAMP_TYPE_MASK) >> 3 if self.magic >= 1 else TIMESTAMP_CREATE_TIME


def _encode_legacy_message(
    offset: int, magic: int, attributes: int, timestamp: int, key: bytes | None, value: bytes | None
) -> bytes:
    body = LegacyMessageBodySchema.build(
        {"magic": magic, "attributes": attributes, "timestamp": timestamp, "key": key, "value": value}
    )
    return _LEGACY_HEAD.pack(offset, 4 + len(body), zlib.crc32(body)) + body


def build_legacy_message_set(
    entries: Iterable[tuple[bytes | None, bytes | None, int]],
    *,
    magic: int = MAGIC_V1,
    compression: int = 0,
    base_offset: int = 0,
    timestamp_type: int = TIMESTAMP_CREATE_TIME,
    log_append_time: int | None = None,
) -> bytes:
    """Encode ``(key, value, timestamp)`` entries as a magic 0/1 message set.

    With compression the set is one wrapper message (magic 1 inner offsets
    relative, wrapper offset = last absolute offset; magic 0 inner offsets
    absolute), as the old Java producer and Kafka's down-conversion write it.
    Timestamps are ignored for magic 0.
    """
    if magic not in (MAGIC_V0, MAGIC_V1):
        raise ValueError(f"legacy message sets have magic 0 or 1, not {magic}")
    if compression == _compression.ZSTD:
        raise InvalidRecordError("zstd compression requires magic 2 record batches")
    items = list(entries)
    ts_attr = TIMESTAMP_TYPE_MASK if (magic == MAGIC_V1 and timestamp_type == TIMESTAMP_LOG_APPEND_TIME) else 0

    def ts_of(t: int) -> int:
        return NO_TIMESTAMP if magic == MAGIC_V0 else t

    if not compression:
        return b"".join(
            _encode_legacy_message(base_offset + i, magic, ts_attr, ts_of(ts), k, v)
            for i, (k, v, ts) in enumerate(items)
        )
    if not items:
        return b""
    inner = b"".join(
        _encode_legacy_message(i if magic == MAGIC_V1 else base_offset + i, magic, 0, ts_of(ts), k, v)
        for i, (k, v, ts) in enumerate(items)
    )
    if compression == _compression.LZ4 and magic == MAGIC_V0:
        wrapped = _compression.lz4_compress_legacy_v0(inner)
    else:
        wrapped = _compression.compress(compression, inner)
    if ts_attr:
        wrapper_ts = log_append_time if log_append_time is not None else int(time.time() * 1000)
    else:
        wrapper_ts = max(ts for _, _, ts in items)
    return _encode_legacy_message(
        base_offset + len(items) - 1, magic, compression | ts_attr, ts_of(wrapper_ts), None, wrapped
    )


def _parse_legacy(mv: memoryview, pos: int, verify_crc: bool) -> tuple[LegacyMessage, int] | None:
    """Parse the shallow legacy message at ``pos``; None at an incomplete tail."""
    n = len(mv)
    if pos + LOG_OVERHEAD > n:
        return None
    offset, size = _OFFSET_LENGTH.unpack_from(mv, pos)
    if size < LEGACY_RECORD_OVERHEAD_V0:
        raise CorruptRecordError(
            f"legacy message at position {pos} has size {size}, smaller than the minimum "
            f"{LEGACY_RECORD_OVERHEAD_V0}"
        )
    end = pos + LOG_OVERHEAD + size
    if end > n:
        return None
    (crc,) = _UINT32.unpack_from(mv, pos + LEGACY_CRC_OFFSET)
    magic = mv[pos + LEGACY_MAGIC_OFFSET]
    if magic not in (MAGIC_V0, MAGIC_V1):
        raise CorruptRecordError(f"message at position {pos} has magic {magic}, expected 0 or 1")
    body = mv[pos + LEGACY_MAGIC_OFFSET : end]
    if verify_crc and zlib.crc32(body) != crc:
        raise CorruptRecordError(f"legacy message at position {pos} (offset {offset}) fails its CRC-32")
    try:
        p = LegacyMessageBodySchema.parse(bytes(body))
    except ConstructError as exc:
        raise CorruptRecordError(f"malformed legacy message at position {pos}: {exc}") from exc
    ts = p.timestamp if magic >= MAGIC_V1 else NO_TIMESTAMP
    return LegacyMessage(offset, magic, p.attributes & 0xFF, ts, p.key, p.value), end


def iter_legacy_messages(
    buf: Buffer, pos: int = 0, *, verify_crc: bool = True, deep: bool = True
) -> Iterator[LegacyMessage]:
    """Yield messages of a magic 0/1 message set, stopping at an incomplete tail.

    With ``deep`` (default) compressed wrappers are expanded into their inner
    messages with absolute offsets (and the wrapper's LogAppendTime applied).
    """
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    while True:
        parsed = _parse_legacy(mv, pos, verify_crc)
        if parsed is None:
            return
        msg, pos = parsed
        codec = msg.compression
        if not deep or codec == _compression.NONE:
            yield msg
            continue
        if codec == _compression.ZSTD:
            raise InvalidRecordError("zstd compression requires magic 2 record batches")
        if msg.value is None:
            raise InvalidRecordError(f"compressed legacy message at offset {msg.offset} has a null value")
        inner = list(iter_legacy_messages(_compression.decompress(codec, msg.value), verify_crc=verify_crc, deep=False))
        if not inner:
            raise InvalidRecordError(f"compressed legacy message at offset {msg.offset} has no inner messages")
        last_rel = inner[-1].offset
        for m in inner:
            if m.compression:
                raise InvalidRecordError("nested compressed legacy messages are not allowed")
            if m.magic != msg.magic:
                raise InvalidRecordError(
                    f"inner message has magic {m.magic} inside a magic {msg.magic} wrapper"
                )
            if msg.magic == MAGIC_V1:
                m.offset = msg.offset - last_rel + m.offset
                if msg.timestamp_type == TIMESTAMP_LOG_APPEND_TIME:
                    m.timestamp = msg.timestamp
                    m.attributes |= TIMESTAMP_TYPE_MASK
            yield m


def legacy_message_set_size(buf: Buffer) -> int:
    """Bytes of whole (shallow) messages at the start of ``buf``."""
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    pos = 0
    while (parsed := _parse_legacy(mv, pos, False)) is not None:
        pos = parsed[1]
    return pos


def legacy_to_v2_batch(
    buf: Buffer,
    *,
    compression: int | None = None,
    base_offset: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
) -> bytes:
    """Up-convert a magic 0/1 message set into one v2 batch, as Kafka's LogValidator does.

    Offsets are renumbered sequentially from ``base_offset`` (the log assigns
    real ones later). ``compression`` defaults to the source codec.
    """
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    msgs = list(iter_legacy_messages(mv))
    if legacy_message_set_size(mv) != len(mv):
        raise CorruptRecordError("legacy message set ends with a partial message")
    if not msgs:
        raise InvalidRecordError("legacy message set holds no messages")
    if compression is None:
        shallow = _parse_legacy(mv, 0, False)
        compression = shallow[0].compression if shallow else 0
    log_append = any(m.timestamp_type == TIMESTAMP_LOG_APPEND_TIME for m in msgs)
    base_ts = msgs[0].timestamp
    records = [
        Record(offset_delta=i, timestamp_delta=m.timestamp - base_ts, key=m.key, value=m.value)
        for i, m in enumerate(msgs)
    ]
    return build_batch(
        records,
        base_offset=base_offset,
        base_timestamp=base_ts,
        compression=compression,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        timestamp_type=TIMESTAMP_LOG_APPEND_TIME if log_append else TIMESTAMP_CREATE_TIME,
        max_timestamp=max(m.timestamp for m in msgs),
    )


def v2_to_legacy_message_set(buf: Buffer, *, magic: int, compression: int | None = None) -> bytes:
    """Down-convert v2 batches to a magic 0/1 message set (for old fetch versions).

    Control batches are dropped, as Kafka does. Each batch becomes either
    plain messages or one compressed wrapper (same codec unless given; zstd
    falls back to none since legacy formats cannot carry it).
    """
    out: list[bytes] = []
    for pos, h in iter_batches(buf):
        if h.is_control:
            continue
        batch = memoryview(buf)[pos : pos + h.size]
        codec = h.compression if compression is None else compression
        if codec == _compression.ZSTD:
            codec = _compression.NONE
        lat = h.timestamp_type == TIMESTAMP_LOG_APPEND_TIME
        recs = decode_records(batch)
        if not recs:
            continue
        ts_of = (lambda r: h.max_timestamp) if lat else (lambda r: h.base_timestamp + r.timestamp_delta)
        if codec == _compression.NONE:
            attrs = TIMESTAMP_TYPE_MASK if (lat and magic == MAGIC_V1) else 0
            for r in recs:
                out.append(
                    _encode_legacy_message(
                        h.base_offset + r.offset_delta, magic, attrs,
                        ts_of(r) if magic == MAGIC_V1 else NO_TIMESTAMP, r.key, r.value,
                    )
                )
        else:
            # One wrapper per batch; offsets inside must be contiguous, which a
            # non-compacted batch guarantees (gaps fall back to plain messages).
            deltas = [r.offset_delta for r in recs]
            if deltas != list(range(len(recs))):
                out.append(v2_to_legacy_message_set(bytes(batch), magic=magic, compression=_compression.NONE))
                continue
            out.append(
                build_legacy_message_set(
                    [(r.key, r.value, ts_of(r)) for r in recs],
                    magic=magic,
                    compression=codec,
                    base_offset=h.base_offset,
                    timestamp_type=h.timestamp_type,
                    log_append_time=h.max_timestamp if lat else None,
                )
            )
    return b"".join(out)


__all__ = [
    "BATCH_HEADER_SIZE",
    "LOG_OVERHEAD",
    "BatchHeader",
    "RecordError",
    "CorruptRecordError",
    "InvalidRecordError",
    "parse_batch_header",
    "validate_batches",
    "validate_batch_at",
    "patch_base_offset",
    "patch_partition_leader_epoch",
    "set_log_append_time",
    "iter_batches",
    "batch_crc",
    "Record",
    "build_batch",
    "decode_records",
    "encode_record",
    "record_offsets_and_timestamps",
    "recompress_batch",
    "build_end_txn_marker",
    "RecordSchema",
    "RecordBodySchema",
    "RecordHeaderSchema",
    "ControlRecordKeySchema",
    "EndTxnMarkerSchema",
    "LegacyMessageBodySchema",
    "LegacyMessage",
    "build_legacy_message_set",
    "iter_legacy_messages",
    "legacy_message_set_size",
    "legacy_to_v2_batch",
    "v2_to_legacy_message_set",
]
