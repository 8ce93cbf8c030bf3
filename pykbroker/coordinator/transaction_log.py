"""Record key/value schemas of the internal topic __transaction_state, laid out as Kafka does.

    key   v0  => version:int16 transactional_id:STRING
    value v0  => version:int16 producer_id:int64 producer_epoch:int16 transaction_timeout_ms:int32
                 transaction_status:int8 transaction_partitions:[topic:STRING partition_ids:[int32]]
                 transaction_last_update_timestamp_ms:int64 transaction_start_timestamp_ms:int64
    value v1  => the same fields, flexible (compact strings and arrays, tagged-field sections), plus
                 the tags 0 previous_producer_id:int64 (-1), 1 next_producer_id:int64 (-1),
                 2 client_transaction_version:int16 (0), 3 next_producer_epoch:int16 (-1)

Kafka writes v1 once transaction.version 1+ is finalized (TransactionVersion.transactionLogValueVersion),
whatever version the client used; the tags carry what transactions v2 (KIP-890) needs to survive a
coordinator reload: the producer id the next completion rotates to, and the client's version. Tag 3
(KIP-939) is read and kept, never set here. Both versions are read, so older logs still replay.

A null value is a tombstone: the transactional id expired (transactional.id.expiration.ms).
Status codes are Kafka's TransactionState ids.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from ..protocol.messages import Codec
from ..protocol.primitives import Array, Field, KStruct, String, fixed

KEY_VERSION = 0
#: The value version written with transaction.version 1+ finalized (v0 below it).
VALUE_VERSION = 1
_VERSION = struct.Struct(">h")


class TxnState(enum.IntEnum):
    """Kafka's TransactionState, with its ids as stored."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display(self) -> str:
        """The name DescribeTransactions/ListTransactions report (Kafka's TransactionState.name)."""
        return "".join(part.capitalize() for part in self.name.split("_"))


def _codec(name: str, fields: list[Field]) -> Codec:
    schema = KStruct(name, fields, [], False)
    return Codec(name, 0, schema, schema.compile())


KEY = _codec("TransactionLogKey", [Field("transactional_id", String(False, False), "")])


def _value_codec(version: int) -> Codec:
    flexible = version >= 1
    topic = KStruct("TransactionPartitions", [
        Field("topic", String(flexible, False), ""),
        Field("partition_ids", Array(fixed("int32"), flexible, False), [])], [], flexible)
    tagged = [Field("previous_producer_id", fixed("int64"), -1, tag=0),
              Field("next_producer_id", fixed("int64"), -1, tag=1),
              Field("client_transaction_version", fixed("int16"), 0, tag=2),
              Field("next_producer_epoch", fixed("int16"), -1, tag=3)] if flexible else []
    schema = KStruct("TransactionLogValue", [
        Field("producer_id", fixed("int64"), -1), Field("producer_epoch", fixed("int16"), -1),
        Field("transaction_timeout_ms", fixed("int32"), 0), Field("transaction_status", fixed("int8"), 0),
        Field("transaction_partitions", Array(topic, flexible, True), None),
        Field("transaction_last_update_timestamp_ms", fixed("int64"), -1),
        Field("transaction_start_timestamp_ms", fixed("int64"), -1)], tagged, flexible)
    return Codec("TransactionLogValue", version, schema, schema.compile())


VALUES = {version: _value_codec(version) for version in (0, 1)}


class StoredTxn(NamedTuple):
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[tuple[str, int]]
    last_update_ms: int
    start_ms: int
    #: v1 tags (defaults: what a v0 record means).
    prev_producer_id: int = -1
    next_producer_id: int = -1
    client_version: int = 0


def encode_key(transactional_id: str) -> bytes:
    return _VERSION.pack(KEY_VERSION) + bytes(KEY.encode({"transactional_id": transactional_id}))


def decode_key(data: bytes) -> str:
    version = _VERSION.unpack_from(data)[0]
    if version != KEY_VERSION:
        raise ValueError(f"transaction log key version {version} is not one this broker reads")
    return KEY.decode(data, 2)[0].transactional_id


def encode_value(txn: StoredTxn, version: int = VALUE_VERSION) -> bytes:
    topics: dict[str, list[int]] = {}
    for topic, partition in sorted(txn.partitions):
        topics.setdefault(topic, []).append(partition)
    value = {
        "producer_id": txn.producer_id, "producer_epoch": txn.producer_epoch,
        "transaction_timeout_ms": txn.timeout_ms, "transaction_status": int(txn.state),
        # Kafka writes no partitions (null) for the Empty state and the completed ones.
        "transaction_partitions": [{"topic": t, "partition_ids": ps} for t, ps in topics.items()] or None,
        "transaction_last_update_timestamp_ms": txn.last_update_ms,
        "transaction_start_timestamp_ms": txn.start_ms}
    if version >= 1:
        value.update(previous_producer_id=txn.prev_producer_id, next_producer_id=txn.next_producer_id,
                     client_transaction_version=txn.client_version, next_producer_epoch=-1)
    return _VERSION.pack(version) + bytes(VALUES[version].encode(value))


def decode_value(data: bytes) -> StoredTxn:
    version = _VERSION.unpack_from(data)[0]
    codec = VALUES.get(version)
    if codec is None:
        raise ValueError(f"transaction log value version {version} is not one this broker reads")
    m, _ = codec.decode(data, 2)
    partitions = frozenset((t.topic, p) for t in (m.transaction_partitions or []) for p in t.partition_ids)
    return StoredTxn(m.producer_id, m.producer_epoch, m.transaction_timeout_ms, TxnState(m.transaction_status),
                     partitions, m.transaction_last_update_timestamp_ms, m.transaction_start_timestamp_ms,
                     m.get("previous_producer_id", -1), m.get("next_producer_id", -1),
                     m.get("client_transaction_version", 0))
