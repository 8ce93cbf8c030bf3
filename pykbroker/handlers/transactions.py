"""Transactions: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit, and the operator
APIs DescribeTransactions, ListTransactions, DescribeProducers.

The transaction coordinator and the group coordinator answer with plain values; this module only
translates requests into their calls and their answers into responses, as KafkaApis does.

Transactions v2 (KIP-890 part 2) are chosen by version, as Kafka chooses them: EndTxn v5 bumps the
epoch and answers with it, TxnOffsetCommit v5+ adds the group's __consumer_offsets partition itself
(no AddOffsetsToTxn), and an AddPartitionsToTxn v4+ add (a broker's, not verify-only) is a v2 add.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..coordinator.transaction_coordinator import TV2
from ..coordinator.transaction_log import TxnState
from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from .offsets import offsets_to_commit
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker

OFFSETS_TOPIC = "__consumer_offsets"
STATE_NAMES = {s.display for s in TxnState}
#: The first versions of transactions v2 (Kafka: TransactionVersion.transactionVersionForEndTxn,
#: version > 4, and ...ForAddPartitionsToTxn, version > 3 (a broker's add); AddPartitionsToTxnManager's
#: ADD_PARTITION for TxnOffsetCommit version > 4 and Produce version > 11).
END_TXN_V2 = 5
TXN_OFFSET_COMMIT_V2 = 5
ADD_PARTITIONS_V2 = 4
ABORTABLE_ERROR_VERSION = 4  # TxnOffsetCommit's first version with TRANSACTION_ABORTABLE
TOPIC_IDS_VERSION = 6  # TxnOffsetCommit names topics by id (KIP-1319)


def _partition_results(broker: "Broker", topics: list[Msg], code: ErrorCode) -> list[dict[str, Any]]:
    """Per-partition codes as Kafka gives them: unknown partitions UNKNOWN_TOPIC_OR_PARTITION, the
    others OPERATION_NOT_ATTEMPTED when any is unknown, else the coordinator's `code`."""
    unknown = {(t.name, p) for t in topics for p in t.partitions if broker.partition(t.name, p) is None}
    return [{"name": t.name, "results_by_partition": [
        {"partition_index": p, "partition_error_code":
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if (t.name, p) in unknown
            else ErrorCode.OPERATION_NOT_ATTEMPTED if unknown else code}
        for p in t.partitions]} for t in topics]


def _has_unknown(broker: "Broker", topics: list[Msg]) -> bool:
    return any(broker.partition(t.name, p) is None for t in topics for p in t.partitions)


@handles("ADD_PARTITIONS_TO_TXN", 0, 5)
async def add_partitions_to_txn(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    await broker.transaction_state_ready()
    if ctx.api_version < 4:
        topics = req.v3_and_below_topics
        code = ErrorCode.NONE
        if not _has_unknown(broker, topics):
            code = broker.txns.add_partitions(req.v3_and_below_transactional_id, req.v3_and_below_producer_id,
                                              req.v3_and_below_producer_epoch, _pairs(topics))
            code = await broker.replicated_txn_write(req.v3_and_below_transactional_id, code)
        return Msg(throttle_time_ms=0, results_by_topic_v3_and_below=_partition_results(broker, topics, code))
    results = []
    for txn in req.transactions:
        if txn.verify_only:
            code, verified = broker.txns.verify_partitions(txn.transactional_id, txn.producer_id,
                                                           txn.producer_epoch, _pairs(txn.topics))
            topic_results = [{"name": t.name, "results_by_partition": [
                {"partition_index": p, "partition_error_code": code or verified[(t.name, p)]}
                for p in t.partitions]} for t in txn.topics]
        else:
            code = ErrorCode.NONE
            if not _has_unknown(broker, txn.topics):
                code = broker.txns.add_partitions(txn.transactional_id, txn.producer_id, txn.producer_epoch,
                                                  _pairs(txn.topics),
                                                  TV2 if ctx.api_version >= ADD_PARTITIONS_V2 else 0)
                code = await broker.replicated_txn_write(txn.transactional_id, code)
            topic_results = _partition_results(broker, txn.topics, code)
        results.append({"transactional_id": txn.transactional_id, "topic_results": topic_results})
    return Msg(throttle_time_ms=0, error_code=0, results_by_transaction=results)


def _pairs(topics: list[Msg]) -> list[tuple[str, int]]:
    return [(t.name, p) for t in topics for p in t.partitions]


@handles("ADD_OFFSETS_TO_TXN", 0, 4)
async def add_offsets_to_txn(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    """The group's __consumer_offsets partition joins the transaction (TxnOffsetCommit follows)."""
    await broker.transaction_state_ready()
    offsets_partition = (OFFSETS_TOPIC, broker.groups.partition_for(req.group_id))
    code = broker.txns.add_partitions(req.transactional_id, req.producer_id, req.producer_epoch, [offsets_partition])
    return Msg(throttle_time_ms=0, error_code=await broker.replicated_txn_write(req.transactional_id, code))


# v5 (4.0, KIP-890 part 2): the epoch bump per transaction; the response gains producer_id/epoch.
@handles("END_TXN", 0, 5)
async def end_txn(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    await broker.transaction_state_ready()
    if ctx.api_version >= END_TXN_V2:
        r = await broker.txns.end_txn_v2(req.transactional_id, req.producer_id, req.producer_epoch, req.committed)
        code = await broker.replicated_txn_write(req.transactional_id, r.error)
        if code:
            return Msg(throttle_time_ms=0, error_code=code, producer_id=-1, producer_epoch=-1)
        return Msg(throttle_time_ms=0, error_code=r.error, producer_id=r.producer_id, producer_epoch=r.producer_epoch)
    code = broker.txns.end_txn(req.transactional_id, req.producer_id, req.producer_epoch, req.committed)
    return Msg(throttle_time_ms=0, error_code=await broker.replicated_txn_write(req.transactional_id, code))


@handles("WRITE_TXN_MARKERS", 0, 1)
async def write_txn_markers(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    """A transaction coordinator's COMMIT/ABORT markers for the partitions this broker leads
    (Kafka's handleWriteTxnMarkersRequest): answered per partition once the ISR has them."""
    results = []
    for m in req.markers:
        codes = {(t.name, p): broker.write_marker(t.name, p, m.producer_id, m.producer_epoch, m.transaction_result,
                                                  m.coordinator_epoch)
                 for t in m.topics for p in t.partition_indexes}
        await broker.replicated_markers(codes)
        results.append({"producer_id": m.producer_id, "topics": [
            {"name": t.name, "partitions": [{"partition_index": p, "error_code": codes[(t.name, p)]}
                                            for p in t.partition_indexes]} for t in m.topics]})
    return Msg(markers=results)


# v5 (4.0, KIP-890 part 2) is v4 on the wire; from it the commit adds the offsets partition itself.
# v6 (KIP-1319) names topics by id, and tells GROUP_ID_NOT_FOUND and STALE_MEMBER_EPOCH apart
# from ILLEGAL_GENERATION, which older versions get for both (Kafka's OffsetMetadataManager).
@handles("TXN_OFFSET_COMMIT", 0, 6)
async def txn_offset_commit(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    """Offsets written now as part of the producer's transaction; the group sees them on commit."""
    offsets_partition = (OFFSETS_TOPIC, broker.groups.partition_for(req.group_id))
    v2 = ctx.api_version >= TXN_OFFSET_COMMIT_V2
    code, verified = await broker.txn_partitions(req.transactional_id, req.producer_id, req.producer_epoch,
                                                 [offsets_partition], add=v2)
    code = code or verified.get(offsets_partition, ErrorCode.NONE)
    if v2:
        if code == ErrorCode.PRODUCER_FENCED:
            code = ErrorCode.INVALID_PRODUCER_EPOCH  # Kafka's AddPartitionsToTxnManager answers so
    else:
        if code == ErrorCode.TRANSACTION_ABORTABLE and ctx.api_version < ABORTABLE_ERROR_VERSION:
            code = ErrorCode.INVALID_TXN_STATE  # v4 (KIP-890) is the first to know TRANSACTION_ABORTABLE
    by_id = ctx.api_version >= TOPIC_IDS_VERSION
    topics = [Msg(t, name=_topic_name(broker, t.topic_id)) for t in req.topics] if by_id else req.topics
    accepted, codes = offsets_to_commit(broker, [t for t in topics if t.name is not None])
    if not code:
        code = broker.groups.txn_commit(req.group_id, req.producer_id, req.producer_epoch, req.get("member_id", ""),
                                        req.get("group_instance_id"), req.get("generation_id_or_member_epoch", -1), accepted)
        if not by_id and code in (ErrorCode.GROUP_ID_NOT_FOUND, ErrorCode.STALE_MEMBER_EPOCH):
            code = ErrorCode.ILLEGAL_GENERATION
    codes.update({key: code for key in accepted})
    return Msg(throttle_time_ms=0, topics=[
        {"name": t.name or "", "topic_id": t.get("topic_id"), "partitions": [
            {"partition_index": p.partition_index,
             "error_code": codes[(t.name, p.partition_index)] if t.name is not None else ErrorCode.UNKNOWN_TOPIC_ID}
            for p in t.partitions]}
        for t in topics])


def _topic_name(broker: "Broker", topic_id: Any) -> str | None:
    topic = broker.topic_by_id(topic_id)
    return topic.name if topic is not None else None


@handles("DESCRIBE_TRANSACTIONS", 0, 0)
async def describe_transactions(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    states = []
    for txn_id in req.transactional_ids:
        d = broker.txns.describe(txn_id)
        topics: dict[str, list[int]] = {}
        for topic, partition in d.partitions:
            topics.setdefault(topic, []).append(partition)
        states.append({"error_code": d.error, "transactional_id": txn_id, "transaction_state": d.state,
                       "transaction_timeout_ms": d.timeout_ms, "transaction_start_time_ms": d.start_ms,
                       "producer_id": d.producer_id, "producer_epoch": d.producer_epoch,
                       "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]})
    return Msg(throttle_time_ms=0, transaction_states=states)


# v2 (4.1, KIP-1152): transactional_id_pattern, a regular expression the whole id must match.
@handles("LIST_TRANSACTIONS", 0, 2)
async def list_transactions(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    unknown = [s for s in req.state_filters if s not in STATE_NAMES]
    pattern = req.get("transactional_id_pattern")
    try:
        matcher = re.compile(pattern) if pattern else None
    except re.error:
        return Msg(throttle_time_ms=0, error_code=ErrorCode.INVALID_REGULAR_EXPRESSION, unknown_state_filters=[],
                   transaction_states=[])
    listed = broker.txns.list([s for s in req.state_filters if s in STATE_NAMES], req.producer_id_filters,
                              req.get("duration_filter", -1))
    if matcher is not None:
        listed = [d for d in listed if matcher.fullmatch(d.transactional_id)]
    if unknown and len(unknown) == len(req.state_filters):
        listed = []  # only unknown states asked for: nothing matches (Kafka)
    return Msg(throttle_time_ms=0, error_code=0, unknown_state_filters=unknown, transaction_states=[
        {"transactional_id": d.transactional_id, "producer_id": d.producer_id, "transaction_state": d.state}
        for d in listed])


@handles("DESCRIBE_PRODUCERS", 0, 0)
async def describe_producers(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    topics = []
    for t in req.topics:
        parts = []
        for index in t.partition_indexes:
            partition = broker.partition(t.name, index)
            if partition is None:
                parts.append({"partition_index": index, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                              "error_message": None, "active_producers": []})
                continue
            parts.append({"partition_index": index, "error_code": 0, "error_message": None, "active_producers": [
                {"producer_id": p.producer_id, "producer_epoch": p.epoch, "last_sequence": p.last_sequence,
                 "last_timestamp": p.last_timestamp, "coordinator_epoch": p.coordinator_epoch,
                 "current_txn_start_offset": p.txn_start_offset} for p in partition.active_producers()]})
        topics.append({"name": t.name, "partitions": parts})
    return Msg(throttle_time_ms=0, topics=topics)
