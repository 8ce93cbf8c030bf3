"""Rewriting a stored v2 batch with some of its records: what log compaction writes (sans I/O).

Kafka's cleaner (``MemoryRecords.filterTo`` + ``MemoryRecordsBuilder``) keeps of every batch its
base offset, last offset delta, producer id/epoch/base sequence, partition leader epoch and codec,
so that offsets, idempotence and transactions survive; only the records area, the counts, the
timestamps and the CRC change. Records are kept byte for byte (they are self-delimiting, offsets
relative to the unchanged base offset); only when the batch gets a *delete horizon* (KIP-534:
attributes bit 6, baseTimestamp = the time after which its tombstones and markers may go) is each
record's timestampDelta re-encoded against the new base timestamp.

Record layout (see records.py): length varint | attributes int8 | timestampDelta varlong |
offsetDelta varint | keyLength varint | key | valueLength varint | value | headers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from pykbroker.protocol import compression as _compression
from pykbroker.protocol.records import (
    _HEADER,
    _UINT32,
    ATTRIBUTES_OFFSET,
    BATCH_HEADER_SIZE,
    COMPRESSION_MASK,
    CRC_OFFSET,
    DELETE_HORIZON_MASK,
    MIN_BATCH_LENGTH,
    TIMESTAMP_LOG_APPEND_TIME,
    BatchHeader,
    InvalidRecordError,
    _crc32c_fn,
    _read_varint,
    _records_payload,
    iter_record_heads,
    parse_batch_header,
)


class RecordSpan(NamedTuple):
    """Where one record sits in a batch's (decompressed) records area, and what the cleaner needs."""

    start: int
    end: int
    #: Position of timestampDelta inside the record, and of the field after it (offsetDelta).
    ts_pos: int
    ts_end: int
    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    has_value: bool


def has_delete_horizon(h: BatchHeader) -> bool:
    return bool(h.attributes & DELETE_HORIZON_MASK)


def delete_horizon_ms(h: BatchHeader) -> int | None:
    """KIP-534: the batch's delete horizon (its baseTimestamp when bit 6 is set), else None."""
    return h.base_timestamp if h.attributes & DELETE_HORIZON_MASK else None


def record_spans(batch: bytes | bytearray | memoryview) -> tuple[BatchHeader, bytes | memoryview, list[RecordSpan]]:
    """Header, records area (decompressed) and the span of every record of the batch at the start."""
    mv = batch if isinstance(batch, memoryview) else memoryview(batch)
    h = parse_batch_header(mv)
    payload = _records_payload(mv, h)
    spans: list[RecordSpan] = []
    pos = 0
    for r in iter_record_heads(payload, h):
        key_len, p = _read_varint(payload, r.rest)
        key = None
        if key_len >= 0:
            key = bytes(payload[p : p + key_len])
            p += key_len
        value_len, p = _read_varint(payload, p)
        if p > r.end:
            raise InvalidRecordError(f"record overruns its length in batch at base offset {h.base_offset}")
        spans.append(RecordSpan(r.start, r.end, r.ts_pos, r.ts_end, r.offset_delta, r.timestamp_delta, key,
                                value_len >= 0))
        pos = r.end
    if pos != len(payload):
        raise InvalidRecordError(f"batch at base offset {h.base_offset} has {len(payload) - pos} bytes after its records")
    return h, payload, spans


def iter_keys(batch: bytes | bytearray | memoryview) -> Iterator[tuple[int, bytes | None, bool]]:
    """``(offset, key, has value)`` of every record of the batch at the start of ``batch``."""
    h, _, spans = record_spans(batch)
    for s in spans:
        yield h.base_offset + s.offset_delta, s.key, s.has_value


def _varint(value: int) -> bytes:
    """Zigzag LEB128, as Kafka's ByteUtils.writeVarlong."""
    v = (value << 1) ^ (value >> 63)
    out = bytearray()
    while v & ~0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _rebased(payload: bytes | memoryview, s: RecordSpan, delta: int) -> bytes:
    """The record at ``s`` with its timestampDelta shifted by ``-delta`` (length re-encoded)."""
    ts = _varint(s.timestamp_delta - delta)
    _, body = _read_varint(payload, s.start)
    inner = bytes(payload[body : s.ts_pos]) + ts + bytes(payload[s.ts_end : s.end])
    return _varint(len(inner)) + inner


def rebuild_batch(h: BatchHeader, payload: bytes | memoryview, kept: Sequence[RecordSpan], *,
                  delete_horizon: int | None) -> bytes:
    """The batch with only the ``kept`` records (non-empty), recompressed with its own codec.

    ``delete_horizon`` (KIP-534) becomes the base timestamp, with bit 6 set; otherwise the base
    timestamp is kept (record timestamps stay exact either way). For CreateTime batches the max
    timestamp is recomputed from the kept records; LogAppendTime batches keep theirs.
    """
    base_ts = h.base_timestamp if delete_horizon is None else delete_horizon
    shift = base_ts - h.base_timestamp
    if shift:
        body = b"".join(_rebased(payload, s, shift) for s in kept)
    else:
        body = b"".join(bytes(payload[s.start : s.end]) for s in kept)
    codec = h.compression
    data = _compression.compress(codec, body) if codec else body
    attributes = h.attributes | (DELETE_HORIZON_MASK if delete_horizon is not None else 0)
    if h.timestamp_type == TIMESTAMP_LOG_APPEND_TIME:
        max_ts = h.max_timestamp
    else:
        max_ts = max(h.base_timestamp + s.timestamp_delta for s in kept)
    return _pack(h, attributes, base_ts, max_ts, len(kept), data)


def empty_batch(h: BatchHeader) -> bytes:
    """Kafka's ``writeEmptyHeader``: the batch's offsets and producer fields, no records; kept so
    that a producer's last sequence (or a marker's epoch) survives when its records are removed."""
    attributes = h.attributes & ~(COMPRESSION_MASK | DELETE_HORIZON_MASK)
    return _pack(h, attributes, h.max_timestamp, h.max_timestamp, 0, b"")


def _pack(h: BatchHeader, attributes: int, base_ts: int, max_ts: int, count: int, data: bytes) -> bytes:
    buf = bytearray(BATCH_HEADER_SIZE + len(data))
    _HEADER.pack_into(buf, 0, h.base_offset, MIN_BATCH_LENGTH + len(data), h.partition_leader_epoch, h.magic, 0,
                      attributes, h.last_offset_delta, base_ts, max_ts, h.producer_id, h.producer_epoch,
                      h.base_sequence, count)
    buf[BATCH_HEADER_SIZE:] = data
    _UINT32.pack_into(buf, CRC_OFFSET, _crc32c_fn(memoryview(buf)[ATTRIBUTES_OFFSET:]))
    return bytes(buf)


__all__ = ["RecordSpan", "delete_horizon_ms", "empty_batch", "has_delete_horizon", "iter_keys",
           "rebuild_batch", "record_spans"]
