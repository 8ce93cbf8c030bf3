"""Malformed frames give one typed DecodeError naming the field -- never another exception or a huge allocation."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pykbroker.protocol.frame import UnsupportedApiError, decode_request, encode_request
from pykbroker.protocol.messages import codec
from pykbroker.protocol.primitives import DecodeError

PRODUCE_V9 = encode_request(0, 9, 1, "c", {"acks": 1, "timeout_ms": 5, "topic_data": [
    {"name": "topic", "partition_data": [{"index": 0, "records": b"r" * 30}]}]})[4:]
METADATA_V1 = encode_request(3, 1, 1, "c", {"topics": [{"name": "abc"}]})[4:]


@pytest.mark.parametrize("frame", [PRODUCE_V9, METADATA_V1])
def test_every_truncation_is_a_decode_error(frame: bytes) -> None:
    for cut in range(len(frame)):
        with pytest.raises(DecodeError):
            decode_request(frame[:cut])


def test_trailing_bytes_are_ignored_like_kafka_does() -> None:
    # librdkafka's Metadata v12 "all topics" request: a 4-byte placeholder for a 1-byte count.
    frame = bytes.fromhex("0003000c00000003000772646b61666b610000000000010000")
    request = decode_request(frame)
    assert request.body.topics is None and request.trailing_bytes == 3
    assert decode_request(PRODUCE_V9 + b"\x00").trailing_bytes == 1


def test_length_past_the_end_names_the_field() -> None:
    frame = bytearray(METADATA_V1)
    # topic name length (INT16) is the last 5 bytes minus "abc": make it claim 1000 bytes
    struct.pack_into(">h", frame, len(frame) - 5, 1000)
    with pytest.raises(DecodeError) as err:
        decode_request(bytes(frame))
    assert "topics" in str(err.value) and "name" in str(err.value)


@pytest.mark.parametrize("count", [-5, 0x7FFFFFFF])
def test_bad_array_counts_fail_before_allocating(count: int) -> None:
    frame = bytearray(METADATA_V1)
    struct.pack_into(">i", frame, len(frame) - 9, count)
    with pytest.raises(DecodeError) as err:
        decode_request(bytes(frame))
    assert "topics" in str(err.value)


def test_huge_compact_count_fails_before_allocating() -> None:
    c = codec("metadata_request", 9)
    body = b"\xff\xff\xff\xff\x07" + b"\x00" * 8  # compact array count of 2**31 - 1
    with pytest.raises(DecodeError, match="more than the bytes left"):
        c.decode(body)


def test_invalid_utf8_is_a_decode_error() -> None:
    frame = bytearray(METADATA_V1)
    frame[-3:] = b"\xff\xfe\xfd"
    with pytest.raises(DecodeError) as err:
        decode_request(bytes(frame))
    assert "UTF-8" in str(err.value) or "utf-8" in str(err.value)


def test_null_in_a_non_nullable_string() -> None:
    frame = bytearray(METADATA_V1)
    struct.pack_into(">h", frame, len(frame) - 5, -1)
    with pytest.raises(DecodeError, match="non-nullable"):
        decode_request(bytes(frame[:-3]))


def test_unknown_api_key_and_version() -> None:
    with pytest.raises(UnsupportedApiError) as err:
        decode_request(struct.pack(">hhih", 999, 0, 42, -1))
    assert err.value.header.correlation_id == 42
    with pytest.raises(UnsupportedApiError, match="outside Kafka's range"):
        decode_request(struct.pack(">hhih", 3, 99, 43, 1) + b"x")


def test_short_frame() -> None:
    with pytest.raises(DecodeError):
        decode_request(b"\x00\x03")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([(0, 9), (0, 3), (1, 12), (3, 12), (3, 1), (18, 3), (11, 9)]))
def test_random_bodies_never_raise_anything_but_decode_error(body: bytes, key_version: tuple[int, int]) -> None:
    api_key, version = key_version
    frame = struct.pack(">hhi", api_key, version, 1) + body
    try:
        decode_request(frame)
    except DecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_frames_never_raise_anything_but_decode_error(data: st.DataObject) -> None:
    frame = bytearray(data.draw(st.sampled_from([PRODUCE_V9, METADATA_V1])))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    try:
        decode_request(bytes(frame))
    except DecodeError:
        pass
