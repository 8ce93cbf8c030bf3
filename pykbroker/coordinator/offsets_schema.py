"""Record key/value schemas of the internal topic __consumer_offsets, laid out as Kafka does.

    key   v1  => version:int16 group:STRING topic:STRING partition:int32       (an offset commit)
    value v3  => version:int16 offset:int64 leader_epoch:int32 metadata:STRING commit_timestamp:int64
    key   v2  => version:int16 group:STRING                                     (group metadata: only
                                                                                 its tombstone is written)
A null value is a tombstone: the committed offset (or the group) was deleted.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..protocol.messages import Codec
from ..protocol.primitives import Field, KStruct, String, fixed

OFFSET_KEY_VERSION = 1
GROUP_KEY_VERSION = 2
OFFSET_VALUE_VERSION = 3

_VERSION = struct.Struct(">h")


def _codec(name: str, fields: list[Field]) -> Codec:
    schema = KStruct(name, fields, [], False)
    return Codec(name, 0, schema, schema.compile())


OFFSET_KEY = _codec("OffsetCommitKey", [
    Field("group", String(False, False), ""), Field("topic", String(False, False), ""),
    Field("partition", fixed("int32"), 0)])
GROUP_KEY = _codec("GroupMetadataKey", [Field("group", String(False, False), "")])
OFFSET_VALUE = _codec("OffsetCommitValue", [
    Field("offset", fixed("int64"), -1), Field("leader_epoch", fixed("int32"), -1),
    Field("metadata", String(False, False), ""), Field("commit_timestamp", fixed("int64"), -1)])


class OffsetKey(NamedTuple):
    group: str
    topic: str
    partition: int


class CommittedOffset(NamedTuple):
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int


def encode_offset_key(key: OffsetKey) -> bytes:
    return _VERSION.pack(OFFSET_KEY_VERSION) + bytes(OFFSET_KEY.encode(key._asdict()))


def encode_group_key(group: str) -> bytes:
    return _VERSION.pack(GROUP_KEY_VERSION) + bytes(GROUP_KEY.encode({"group": group}))


def encode_offset_value(value: CommittedOffset) -> bytes:
    return _VERSION.pack(OFFSET_VALUE_VERSION) + bytes(OFFSET_VALUE.encode(value._asdict()))


def decode_key(data: bytes) -> OffsetKey | str | None:
    """An OffsetKey, a group name (group metadata key), or None for a key this broker does not use."""
    version = _VERSION.unpack_from(data)[0]
    if version in (0, 1):
        m, _ = OFFSET_KEY.decode(data, 2)
        return OffsetKey(m.group, m.topic, m.partition)
    if version == GROUP_KEY_VERSION:
        return GROUP_KEY.decode(data, 2)[0].group
    return None


def decode_offset_value(data: bytes) -> CommittedOffset:
    version = _VERSION.unpack_from(data)[0]
    if version != OFFSET_VALUE_VERSION:
        raise ValueError(f"offset commit value version {version} is not one this broker writes")
    m, _ = OFFSET_VALUE.decode(data, 2)
    return CommittedOffset(m.offset, m.leader_epoch, m.metadata, m.commit_timestamp)
