"""Record-batch compression codecs, byte-compatible with Kafka's Java client.

Codec ids are the values of the low three bits of a record batch's
``attributes`` field: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.

Format notes (why the code looks the way it does):

* **snappy** - the Java client (and librdkafka, for compatibility) writes
  snappy in the *xerial* block framing: a 16-byte header
  (``\\x82SNAPPY\\x00`` + int32 version + int32 min-compatible version) then
  repeated ``int32 BE compressed length + raw snappy block`` chunks of at most
  32 KiB of input each. Other producers write one raw snappy block. We accept
  both (plus the official snappy *framing* format, seen from some Go
  clients) and write xerial like Java does.
* **lz4** - the standard LZ4 *frame* format with independent 64 KiB blocks
  and no content size, as Java's ``KafkaLZ4BlockOutputStream`` writes.
  Kafka 0.8/0.9 clients writing magic-0 message sets computed the frame
  header checksum over the wrong bytes (including the 4-byte magic); on a
  header-checksum failure we retry with the checksum corrected, mirroring
  Java's ``ignoreFlagDescriptorChecksum`` for magic 0.
* **zstd** - frames without a content size and possibly several frames
  back to back (the Java client streams), so decompression is streaming.
* **gzip** - possibly multi-member; ``zlib`` with gzip wbits.

Every decoding failure is reported as ``InvalidRecordError`` (records.py);
the import is deferred to avoid a module cycle.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

import cramjam
import lz4.frame
import zstandard

NONE: Final = 0
GZIP: Final = 1
SNAPPY: Final = 2
LZ4: Final = 3
ZSTD: Final = 4

CODEC_NAMES: Final = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
# Kafka's `compression.type` config values -> codec id ("producer" is not a codec).
CODEC_BY_CONFIG_NAME: Final = {
    "uncompressed": NONE, "none": NONE, "gzip": GZIP, "snappy": SNAPPY, "lz4": LZ4, "zstd": ZSTD,
}

_XERIAL_MAGIC: Final = b"\x82SNAPPY\x00"
_XERIAL_HEADER: Final = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK: Final = 32 * 1024
_SNAPPY_FRAMED_MAGIC: Final = b"\xff\x06\x00\x00sNaPpY"
_INT32: Final = struct.Struct(">i")

_LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"

_ZSTD_CCTX = zstandard.ZstdCompressor(level=3, write_content_size=False)
_ZSTD_DCTX = zstandard.ZstdDecompressor()


def _invalid(msg: str) -> Exception:
    from pykbroker.protocol.records import InvalidRecordError

    return InvalidRecordError(msg)


def compress(codec: int, data: bytes | bytearray | memoryview, *, level: int | None = None) -> bytes:
    """Compress ``data`` the way the Java producer would for ``codec``."""
    if codec == NONE:
        return bytes(data)
    if codec == GZIP:
        c = zlib.compressobj(6 if level is None else level, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if codec == SNAPPY:
        return _xerial_compress(data)
    if codec == LZ4:
        return lz4.frame.compress(
            data,
            compression_level=0 if level is None else level,
            block_size=lz4.frame.BLOCKSIZE_MAX64KB,
            block_linked=False,
            content_checksum=False,
            store_size=False,
        )
    if codec == ZSTD:
        cctx = _ZSTD_CCTX if level is None else zstandard.ZstdCompressor(level=level, write_content_size=False)
        return cctx.compress(data)
    raise _invalid(f"unknown compression codec id {codec}")


def decompress(codec: int, data: bytes | bytearray | memoryview) -> bytes:
    """Decompress a batch payload; raise InvalidRecordError on corrupt input."""
    name = CODEC_NAMES.get(codec)
    if name is None:
        raise _invalid(f"unknown compression codec id {codec}")
    try:
        if codec == NONE:
            return bytes(data)
        if codec == GZIP:
            return _gunzip(data)
        if codec == SNAPPY:
            return _snappy_decompress(data)
        if codec == LZ4:
            return _lz4_decompress(data)
        return _zstd_decompress(data)
    except Exception as exc:
        from pykbroker.protocol.records import RecordError

        if isinstance(exc, RecordError):
            raise
        raise _invalid(f"corrupt {name} compressed data: {exc}") from exc


# --------------------------------------------------------------------------- gzip


def _gunzip(data: bytes | bytearray | memoryview) -> bytes:
    out: list[bytes] = []
    buf = bytes(data)
    while True:
        d = zlib.decompressobj(47)  # 32+15: auto-detect gzip/zlib header
        out.append(d.decompress(buf))
        if not d.eof:
            raise _invalid("truncated gzip stream")
        buf = d.unused_data
        if not buf.strip(b"\x00"):  # trailing padding is tolerated like GZIPInputStream
            return b"".join(out)


# ------------------------------------------------------------------------- snappy


def _xerial_compress(data: bytes | bytearray | memoryview) -> bytes:
    mv = memoryview(data)
    parts = [_XERIAL_HEADER]
    for i in range(0, len(mv), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(mv[i : i + _XERIAL_BLOCK]))
        parts.append(_INT32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: bytes | bytearray | memoryview) -> bytes:
    mv = memoryview(data)
    if len(mv) >= 16 and mv[:8] == _XERIAL_MAGIC:
        # Version/compat ints are ignored on purpose: some producers write them
        # little-endian and Java's reader does not check them either.
        out: list[bytes] = []
        pos, end = 16, len(mv)
        while pos < end:
            if pos + 4 > end:
                raise _invalid("truncated xerial snappy block length")
            (n,) = _INT32.unpack_from(mv, pos)
            pos += 4
            if n < 0 or pos + n > end:
                raise _invalid(f"xerial snappy block length {n} exceeds the data")
            out.append(bytes(cramjam.snappy.decompress_raw(mv[pos : pos + n])))
            pos += n
        return b"".join(out)
    if mv[: len(_SNAPPY_FRAMED_MAGIC)] == _SNAPPY_FRAMED_MAGIC:
        return bytes(cramjam.snappy.decompress(mv))
    return bytes(cramjam.snappy.decompress_raw(mv))


# ---------------------------------------------------------------------------- lz4


def _lz4_decompress(data: bytes | bytearray | memoryview) -> bytes:
    raw = bytes(data)
    try:
        return lz4.frame.decompress(raw)
    except RuntimeError:
        fixed = _fix_lz4_header_checksum(raw)
        if fixed is None or fixed == raw:
            raise
        return lz4.frame.decompress(fixed)


def _lz4_descriptor_end(frame: bytes) -> int | None:
    """Index of the header-checksum byte of an LZ4 frame, or None."""
    if len(frame) < 7 or frame[:4] != _LZ4_MAGIC:
        return None
    flg = frame[4]
    end = 6  # magic(4) + FLG + BD
    if flg & 0x08:  # content size present
        end += 8
    if flg & 0x01:  # dictionary id present
        end += 4
    return end if end < len(frame) else None


def _fix_lz4_header_checksum(frame: bytes) -> bytes | None:
    end = _lz4_descriptor_end(frame)
    if end is None:
        return None
    hc = (xxh32(frame[4:end]) >> 8) & 0xFF
    return frame[:end] + bytes([hc]) + frame[end + 1 :]


def lz4_compress_legacy_v0(data: bytes | bytearray | memoryview) -> bytes:
    """LZ4 frame with the broken header checksum Kafka 0.8/0.9 used for magic 0."""
    frame = compress(LZ4, data)
    end = _lz4_descriptor_end(frame)
    assert end is not None
    hc = (xxh32(frame[:end]) >> 8) & 0xFF
    return frame[:end] + bytes([hc]) + frame[end + 1 :]


_P1, _P2, _P3, _P4, _P5 = 0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1
_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32 (only used on the few bytes of an LZ4 frame descriptor)."""
    n = len(data)
    i = 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while i + 16 <= n:
            for k in range(4):
                (lane,) = struct.unpack_from("<I", data, i + 4 * k)
                v[k] = (_rotl((v[k] + lane * _P2) & _M32, 13) * _P1) & _M32
            i += 16
        acc = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M32
    else:
        acc = (seed + _P5) & _M32
    acc = (acc + n) & _M32
    while i + 4 <= n:
        (lane,) = struct.unpack_from("<I", data, i)
        acc = (_rotl((acc + lane * _P3) & _M32, 17) * _P4) & _M32
        i += 4
    while i < n:
        acc = (_rotl((acc + data[i] * _P5) & _M32, 11) * _P1) & _M32
        i += 1
    acc ^= acc >> 15
    acc = (acc * _P2) & _M32
    acc ^= acc >> 13
    acc = (acc * _P3) & _M32
    acc ^= acc >> 16
    return acc


# --------------------------------------------------------------------------- zstd


def _zstd_decompress(data: bytes | bytearray | memoryview) -> bytes:
    out: list[bytes] = []
    buf: bytes | bytearray | memoryview = data
    while True:
        dobj = _ZSTD_DCTX.decompressobj()
        out.append(dobj.decompress(buf))
        if not dobj.eof:
            raise _invalid("truncated zstd frame")
        buf = dobj.unused_data
        if not buf:
            return b"".join(out)
