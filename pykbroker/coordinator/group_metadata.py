"""The group metadata record of __consumer_offsets (Kafka's GroupMetadataValue v3).

Written when a generation's assignment is stored (SyncGroup from the leader) and when a group
becomes empty, so that a coordinator that loads the partition knows the group's generation,
members and assignments, as Kafka's coordinator does after a restart or a leadership move.

    value v3 => version:int16 protocol_type:STRING generation:int32 protocol:NULLABLE_STRING
                leader:NULLABLE_STRING current_state_timestamp:int64
                members:[member_id group_instance_id:NULLABLE_STRING client_id client_host
                         rebalance_timeout:int32 session_timeout:int32 subscription:BYTES assignment:BYTES]
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..protocol.messages import Codec
from ..protocol.primitives import Array, Bytes, Field, KStruct, String, fixed

GROUP_VALUE_VERSION = 3
_VERSION = struct.Struct(">h")

_MEMBER = KStruct("MemberMetadata", [
    Field("member_id", String(False, False), ""), Field("group_instance_id", String(False, True), None),
    Field("client_id", String(False, False), ""), Field("client_host", String(False, False), ""),
    Field("rebalance_timeout", fixed("int32"), -1), Field("session_timeout", fixed("int32"), 0),
    Field("subscription", Bytes(False, False), b""), Field("assignment", Bytes(False, False), b"")], [], False)
_VALUE = KStruct("GroupMetadataValue", [
    Field("protocol_type", String(False, False), ""), Field("generation", fixed("int32"), 0),
    Field("protocol", String(False, True), None), Field("leader", String(False, True), None),
    Field("current_state_timestamp", fixed("int64"), -1),
    Field("members", Array(_MEMBER, False, False), [])], [], False)
GROUP_VALUE = Codec("GroupMetadataValue", GROUP_VALUE_VERSION, _VALUE, _VALUE.compile())


class StoredMember(NamedTuple):
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


class StoredGroup(NamedTuple):
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    state_timestamp: int
    members: tuple[StoredMember, ...]


def encode_group_value(group: StoredGroup) -> bytes:
    body = {"protocol_type": group.protocol_type, "generation": group.generation, "protocol": group.protocol,
            "leader": group.leader, "current_state_timestamp": group.state_timestamp,
            "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "client_id": m.client_id, "client_host": m.client_host,
                         "rebalance_timeout": m.rebalance_timeout_ms, "session_timeout": m.session_timeout_ms,
                         "subscription": m.subscription, "assignment": m.assignment} for m in group.members]}
    return _VERSION.pack(GROUP_VALUE_VERSION) + bytes(GROUP_VALUE.encode(body))


def decode_group_value(data: bytes) -> StoredGroup:
    """Raises ValueError for a version this broker does not write (Kafka's own data is not read here)."""
    version = _VERSION.unpack_from(data)[0]
    if version != GROUP_VALUE_VERSION:
        raise ValueError(f"group metadata value version {version} is not one this broker writes")
    m, _ = GROUP_VALUE.decode(data, 2)
    return StoredGroup(m.protocol_type, m.generation, m.protocol, m.leader, m.current_state_timestamp,
                       tuple(StoredMember(x.member_id, x.group_instance_id, x.client_id, x.client_host,
                                          x.rebalance_timeout, x.session_timeout, bytes(x.subscription),
                                          bytes(x.assignment)) for x in m.members))
