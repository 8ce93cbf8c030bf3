"""Produce: validate record batches and append them as received to the partition logs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple

import trio

from ..cluster.roles import wait_for_replication
from ..log.errors import (
    InvalidTimestampError, KafkaStorageError, MessageTooLargeError, NotLeaderError, RecordBatchTooLargeError,
)
from ..log.producer_state import InvalidProducerEpochError, OutOfOrderSequenceError
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from ..protocol.records import (
    CorruptRecordError, InvalidRecordError, RecordError, iter_batches, legacy_to_v2_batch,
)
from ..quotas import ANONYMOUS_USER
from ..server.connection import Deferred, Throttled
from .registry import RequestContext, handles
from .topic_ids import name_by_id

if TYPE_CHECKING:
    from ..broker import Broker
    from ..cluster.partition import Partition

log = logging.getLogger("pykbroker.produce")

LEGACY_MAGIC_AT = 16  # offset(8) size(4) crc(4) magic(1): the magic byte of a v0/v1 message

_APPEND_ERRORS: tuple[tuple[type[Exception], ErrorCode], ...] = (
    (CorruptRecordError, ErrorCode.CORRUPT_MESSAGE),
    (InvalidRecordError, ErrorCode.INVALID_RECORD),
    (MessageTooLargeError, ErrorCode.MESSAGE_TOO_LARGE),
    (RecordBatchTooLargeError, ErrorCode.RECORD_LIST_TOO_LARGE),
    (InvalidTimestampError, ErrorCode.INVALID_TIMESTAMP),
    (OutOfOrderSequenceError, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),
    (InvalidProducerEpochError, ErrorCode.INVALID_PRODUCER_EPOCH),
    (NotLeaderError, ErrorCode.NOT_LEADER_OR_FOLLOWER),
)


#: From v12 (KIP-890 part 2) a transactional produce adds its partition to the transaction
#: (Kafka's ADD_PARTITION for Produce version > 11); before, it only verifies the partition was added.
ADD_PARTITION_VERSION = 12
#: Produce v11 clients know TRANSACTION_ABORTABLE (KIP-890); older ones are told INVALID_TXN_STATE.
ABORTABLE_ERROR_VERSION = 11
#: Coordinator errors Kafka's ReplicaManager answers as NOT_ENOUGH_REPLICAS, which every producer
#: retries without a metadata refresh (CONCURRENT_TRANSACTIONS too, except to a v2 producer).
_RETRY_AS_NOT_ENOUGH_REPLICAS = frozenset({ErrorCode.COORDINATOR_LOAD_IN_PROGRESS, ErrorCode.COORDINATOR_NOT_AVAILABLE,
                                           ErrorCode.NOT_COORDINATOR})


# v12 (KIP-890) is v11 on the wire; what changes is the implicit add above. v13 (KIP-516) addresses
# topics by id: an unknown id is UNKNOWN_TOPIC_ID.
@handles("PRODUCE", 0, 13)
async def produce(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg | Throttled | Deferred | None:
    acks = req.acks
    deadline = trio.current_time() + max(req.timeout_ms, 0) / 1000  # acks=all waits until then at most
    unknown_ids = name_by_id(broker, req.topic_data) if ctx.api_version >= 13 else set()
    waits: list[_Wait] = []  # acks=all in a cluster: appended, to be answered once replicated
    topics = []
    for topic in req.topic_data:
        partitions = []
        for part in topic.partition_data:
            if id(topic) in unknown_ids:
                result = _error(part.index, ErrorCode.UNKNOWN_TOPIC_ID)
            elif acks not in (-1, 0, 1):
                result = _error(part.index, ErrorCode.INVALID_REQUIRED_ACKS)
            else:
                result = await _append(broker, topic.name, part.index, part.records, ctx.api_version,
                                       req.get("transactional_id"), acks, waits)
            partitions.append(result)
        topics.append({"name": topic.name, "topic_id": topic.get("topic_id"), "partition_responses": partitions})
    # Kafka records the request's size against the producer's byte-rate quota once it is handled;
    # the response reports the throttle time and the server mutes the connection for it.
    throttle_ms = broker.client_quotas.produce.record(ANONYMOUS_USER, ctx.client_id, ctx.request_bytes)
    # Kafka sends no response at all for acks=0 (the connection is still muted when throttled).
    response = None if acks == 0 else Msg(responses=topics, throttle_time_ms=throttle_ms)
    if waits and not throttle_ms:
        # Every append is done, in request order: the connection may read its next requests while
        # this one waits for the followers (its response still leaves in order).
        async def replicated() -> Msg | None:
            await _wait_for_replication(waits, deadline)
            return response

        return Deferred(replicated)
    await _wait_for_replication(waits, deadline)
    return Throttled(response, throttle_ms) if throttle_ms else response


class _Wait(NamedTuple):
    """An acks=all append in a cluster: its partition response, answered when the high watermark
    reaches `offset` (under leader epoch `epoch`)."""

    result: dict[str, Any]
    partition: "Partition"
    offset: int
    epoch: int


async def _wait_for_replication(waits: list[_Wait], deadline: float) -> None:
    """Kafka's DelayedProduce: each partition's outcome replaces its response when not NONE."""
    for w in waits:
        code = await wait_for_replication(w.partition, w.offset, w.epoch, deadline)
        if code:
            w.result.update(_error(w.result["index"], code))


def _error(index: int, code: ErrorCode, message: str | None = None) -> dict[str, Any]:
    return {"index": index, "error_code": code, "base_offset": -1, "log_append_time_ms": -1,
            "log_start_offset": -1, "record_errors": [], "error_message": message}


async def _append(broker: "Broker", topic: str, index: int, records: Any, version: int,
                  transactional_id: str | None, acks: int, waits: list[_Wait]) -> dict[str, Any]:
    partition = broker.partition(topic, index)
    if partition is None:
        return _error(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if not partition.is_leader:
        return _error(index, ErrorCode.NOT_LEADER_OR_FOLLOWER)
    replicated = acks == -1 and partition.replication is not None
    if replicated and len(partition.isr) < partition.min_insync_replicas:
        return _error(index, ErrorCode.NOT_ENOUGH_REPLICAS,
                      f"the ISR {partition.isr} is smaller than min.insync.replicas={partition.min_insync_replicas}")
    if records is None or len(records) == 0:
        return _error(index, ErrorCode.INVALID_RECORD, "a produce request needs at least one record batch")
    try:
        if version < 3 and len(records) > LEGACY_MAGIC_AT and records[LEGACY_MAGIC_AT] < 2:
            # Produce v0-2 carry message sets of magic 0/1: up-convert once, as Kafka's LogValidator.
            records = legacy_to_v2_batch(records)
        code = await _verify_transaction(broker, topic, index, records, transactional_id, version)
        if code:
            return _error(index, code, "the partition is not part of the producer's ongoing transaction"
                          if code == ErrorCode.INVALID_TXN_STATE else None)
        epoch = partition.leader_epoch
        result = await partition.append_records(records)
        required = partition.log_end_offset
    except KafkaStorageError as e:
        log.error("produce to %s-%d failed on disk: %s", topic, index, e)
        return _error(index, ErrorCode.KAFKA_STORAGE_ERROR, str(e))
    except (RecordError, *(cls for cls, _ in _APPEND_ERRORS)) as e:
        log.info("rejected produce to %s-%d: %s", topic, index, e)
        return _error(index, _code_for(e), str(e))
    answer = {"index": index, "error_code": 0, "base_offset": result.base_offset,
              "log_append_time_ms": result.log_append_time_ms, "log_start_offset": result.log_start_offset,
              "record_errors": [], "error_message": None}
    if replicated:  # acks=all in a cluster: answered once the high watermark covers the batch
        waits.append(_Wait(answer, partition, required, epoch))
    return answer


async def _verify_transaction(broker: "Broker", topic: str, index: int, records: Any,
                              transactional_id: str | None, version: int) -> ErrorCode:
    """Transactional batches are written only into the producer's ongoing transaction (Kafka's
    transaction.partition.verification): before v12 the partition must have been added with
    AddPartitionsToTxn; from v12 (transactions v2) this adds it, starting the transaction if needed."""
    first = next(iter_batches(records), None)
    if first is None or not first[1].is_transactional:
        return ErrorCode.NONE
    header = first[1]
    if transactional_id is None:
        return ErrorCode.INVALID_RECORD  # Kafka: transactional records need the request's transactional id
    tp = (topic, index)
    add = version >= ADD_PARTITION_VERSION
    code, verified = await broker.txn_partitions(transactional_id, header.producer_id, header.producer_epoch, [tp], add)
    code = code or verified.get(tp, ErrorCode.NONE)
    if not add:
        if code == ErrorCode.TRANSACTION_ABORTABLE and version < ABORTABLE_ERROR_VERSION:
            code = ErrorCode.INVALID_TXN_STATE
        elif code == ErrorCode.CONCURRENT_TRANSACTIONS:
            code = ErrorCode.NOT_ENOUGH_REPLICAS
    if code == ErrorCode.PRODUCER_FENCED:
        return ErrorCode.INVALID_PRODUCER_EPOCH  # what a produce reports for a fenced epoch
    if code in _RETRY_AS_NOT_ENOUGH_REPLICAS:
        return ErrorCode.NOT_ENOUGH_REPLICAS
    return code


def _code_for(e: Exception) -> ErrorCode:
    for cls, code in _APPEND_ERRORS:
        if isinstance(e, cls):
            return code
    return ErrorCode.UNKNOWN_SERVER_ERROR
