"""Record key/value schemas of the internal topic __transaction_state, laid out as Kafka does.

    key   v0  => version:int16 transactional_id:STRING
    value v0  => version:int16 producer_id:int64 producer_epoch:int16 transaction_timeout_ms:int32
                 transaction_status:int8 transaction_partitions:[topic:STRING partition_ids:[int32]]
                 transaction_last_update_timestamp_ms:int64 transaction_start_timestamp_ms:int64

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
VALUE_VERSION = 0
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


_TOPIC = KStruct("TransactionPartitions", [
    Field("topic", String(False, False), ""), Field("partition_ids", Array(fixed("int32"), False, False), [])],
    [], False)
KEY = _codec("TransactionLogKey", [Field("transactional_id", String(False, False), "")])
VALUE = _codec("TransactionLogValue", [
    Field("producer_id", fixed("int64"), -1), Field("producer_epoch", fixed("int16"), -1),
    Field("transaction_timeout_ms", fixed("int32"), 0), Field("transaction_status", fixed("int8"), 0),
    Field("transaction_partitions", Array(_TOPIC, False, True), None),
    Field("transaction_last_update_timestamp_ms", fixed("int64"), -1),
    Field("transaction_start_timestamp_ms", fixed("int64"), -1)])


class StoredTxn(NamedTuple):
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[tuple[str, int]]
    last_update_ms: int
    start_ms: int


def encode_key(transactional_id: str) -> bytes:
    return _VERSION.pack(KEY_VERSION) + bytes(KEY.encode({"transactional_id": transactional_id}))


def decode_key(data: bytes) -> str:
    version = _VERSION.unpack_from(data)[0]
    if version != KEY_VERSION:
        raise ValueError(f"transaction log key version {version} is not one this broker reads")
    return KEY.decode(data, 2)[0].transactional_id


def encode_value(txn: StoredTxn) -> bytes:
    topics: dict[str, list[int]] = {}
    for topic, partition in sorted(txn.partitions):
        topics.setdefault(topic, []).append(partition)
    return _VERSION.pack(VALUE_VERSION) + bytes(VALUE.encode({
        "producer_id": txn.producer_id, "producer_epoch": txn.producer_epoch,
        "transaction_timeout_ms": txn.timeout_ms, "transaction_status": int(txn.state),
        # Kafka writes no partitions (null) for the Empty state and the completed ones.
        "transaction_partitions": [{"topic": t, "partition_ids": ps} for t, ps in topics.items()] or None,
        "transaction_last_update_timestamp_ms": txn.last_update_ms,
        "transaction_start_timestamp_ms": txn.start_ms}))


def decode_value(data: bytes) -> StoredTxn:
    version = _VERSION.unpack_from(data)[0]
    if version != VALUE_VERSION:
        raise ValueError(f"transaction log value version {version} is not one this broker reads")
    m, _ = VALUE.decode(data, 2)
    partitions = frozenset((t.topic, p) for t in (m.transaction_partitions or []) for p in t.partition_ids)
    return StoredTxn(m.producer_id, m.producer_epoch, m.transaction_timeout_ms, TxnState(m.transaction_status),
                     partitions, m.transaction_last_update_timestamp_ms, m.transaction_start_timestamp_ms)
