"""Codec round trips and interop with the framings real producers write."""

from __future__ import annotations

import gzip
import struct
import types

import cramjam
import lz4.frame
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from pykbroker.protocol import compression as c
from pykbroker.protocol.records import InvalidRecordError

CODECS = [c.NONE, c.GZIP, c.SNAPPY, c.LZ4, c.ZSTD]
PAYLOADS = [b"", b"x", b"hello kafka " * 5000, bytes(range(256)) * 300]


@pytest.fixture
def kafka_codec_with_snappy(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """kafka-python's codec module, with its optional `snappy` dependency backed by cramjam.

    Only the raw block codec is substituted; the xerial framing under test is
    kafka-python's own code.
    """
    import kafka.codec

    shim = types.SimpleNamespace(
        compress=lambda b: bytes(cramjam.snappy.compress_raw(bytes(b))),
        decompress=lambda b: bytes(cramjam.snappy.decompress_raw(bytes(b))),
    )
    monkeypatch.setattr(kafka.codec, "snappy", shim)
    return kafka.codec


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=["empty", "one", "text", "binary"])
def test_round_trip(codec: int, payload: bytes) -> None:
    packed = c.compress(codec, payload)
    assert c.decompress(codec, packed) == payload
    assert c.decompress(codec, memoryview(packed)) == payload
    assert c.decompress(codec, bytearray(packed)) == payload


@settings(max_examples=50, deadline=None)
@given(codec=st.sampled_from(CODECS), payload=st.binary(max_size=100_000))
def test_round_trip_property(codec: int, payload: bytes) -> None:
    assert c.decompress(codec, c.compress(codec, payload)) == payload


def test_snappy_compress_writes_xerial_like_java() -> None:
    data = b"a" * 100_000
    packed = c.compress(c.SNAPPY, data)
    assert packed[:8] == b"\x82SNAPPY\x00"
    assert struct.unpack(">ii", packed[8:16]) == (1, 1)
    # 100 000 bytes in 32 KiB xerial blocks -> 4 blocks
    pos, blocks = 16, 0
    while pos < len(packed):
        (n,) = struct.unpack_from(">i", packed, pos)
        pos += 4 + n
        blocks += 1
    assert pos == len(packed) and blocks == 4


def test_snappy_accepts_kafka_python_xerial(kafka_codec_with_snappy: types.ModuleType) -> None:
    data = b"some repetitive payload " * 10_000
    framed = kafka_codec_with_snappy.snappy_encode(data)  # xerial_compatible=True by default
    assert framed.startswith(b"\x82SNAPPY\x00")
    assert c.decompress(c.SNAPPY, framed) == data
    # and kafka-python reads what we write
    assert kafka_codec_with_snappy.snappy_decode(c.compress(c.SNAPPY, data)) == data


def test_snappy_accepts_raw_and_framed_formats() -> None:
    data = b"raw snappy block " * 1000
    assert c.decompress(c.SNAPPY, bytes(cramjam.snappy.compress_raw(data))) == data
    assert c.decompress(c.SNAPPY, bytes(cramjam.snappy.compress(data))) == data


def test_snappy_xerial_with_little_endian_version_fields() -> None:
    # Some producers (redpanda) write the xerial version ints little-endian.
    data = b"x" * 1000
    block = bytes(cramjam.snappy.compress_raw(data))
    framed = b"\x82SNAPPY\x00" + struct.pack("<ii", 1, 1) + struct.pack(">i", len(block)) + block
    assert c.decompress(c.SNAPPY, framed) == data


def test_lz4_is_a_standard_frame_with_independent_blocks() -> None:
    data = bytes(range(256)) * 1000
    packed = c.compress(c.LZ4, data)
    assert packed[:4] == b"\x04\x22\x4d\x18"
    flg, bd = packed[4], packed[5]
    assert flg & 0x20  # block independence
    assert not flg & 0x08  # no content size, like KafkaLZ4BlockOutputStream
    assert (bd >> 4) & 0x7 == 4  # 64 KiB max block size
    assert lz4.frame.decompress(packed) == data


def test_lz4_kafka_python_frames_decode(kafka_codec_with_snappy: types.ModuleType) -> None:
    data = b"lz4 " * 10_000
    assert c.decompress(c.LZ4, kafka_codec_with_snappy.lz4_encode(data)) == data


def test_lz4_legacy_broken_header_checksum_is_accepted() -> None:
    data = b"old kafka 0.8 lz4 " * 500
    broken = c.lz4_compress_legacy_v0(data)
    with pytest.raises(RuntimeError):
        lz4.frame.decompress(broken)
    assert c.decompress(c.LZ4, broken) == data


def test_xxh32_known_vectors() -> None:
    assert c.xxh32(b"") == 0x02CC5D05
    assert c.xxh32(b"a") == 0x550D7456
    assert c.xxh32(b"abc") == 0x32D153FF
    assert c.xxh32(b"Nobody inspects the spammish repetition") == 0xE2293B2F


def test_zstd_multiple_frames_without_content_size() -> None:
    cctx = zstandard.ZstdCompressor(write_content_size=False)
    packed = cctx.compress(b"first ") + cctx.compress(b"second")
    assert c.decompress(c.ZSTD, packed) == b"first second"


def test_gzip_multi_member() -> None:
    packed = gzip.compress(b"one ") + gzip.compress(b"two")
    assert c.decompress(c.GZIP, packed) == b"one two"


@pytest.mark.parametrize("codec", [c.GZIP, c.SNAPPY, c.LZ4, c.ZSTD])
def test_corrupt_data_raises_invalid_record(codec: int) -> None:
    packed = c.compress(codec, b"payload " * 2000)
    for bad in (packed[: len(packed) // 2], b"\x00garbage\xff" * 5):
        with pytest.raises(InvalidRecordError, match=c.CODEC_NAMES[codec]):
            c.decompress(codec, bad)


def test_unknown_codec() -> None:
    with pytest.raises(InvalidRecordError, match="unknown compression codec id 7"):
        c.decompress(7, b"x")
    with pytest.raises(InvalidRecordError, match="unknown compression codec id 5"):
        c.compress(5, b"x")
