"""Metadata and DescribeTopicPartitions: brokers, topics and partition leaders, as the partition
layer reports them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..log.errors import InvalidTopicError, KafkaStorageError
from ..log.manager import validate_topic_name
from ..protocol.errors import ErrorCode
from ..protocol.primitives import ZERO_UUID, Msg
from .registry import AUTHORIZED_OPERATIONS_OMITTED, RequestContext, authorized_operations, handles

if TYPE_CHECKING:
    from ..broker import Broker, Topic



# v13 (KIP-1102) only adds a top-level error_code: 0 here (REBOOTSTRAP_REQUIRED needs stale-metadata detection).
@handles("METADATA", 0, 13)
async def metadata(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    v = ctx.api_version
    requested = req.topics
    if v == 0 and requested == []:
        requested = None  # v0: an empty list means all topics
    # v4+ lets the client say whether to auto-create; before that the broker config decides.
    allow_auto = req.get("allow_auto_topic_creation", True) and broker.config.auto_create_topics_enable
    topics: list[dict[str, Any]] = []
    topic_ops = authorized_operations("topic", req.get("include_topic_authorized_operations", False))
    if requested is None:
        topics = [_topic(broker, t) for t in broker.topics() if not t.is_internal or v >= 1]
    else:
        # As Kafka: one non-zero topic id makes the whole request by id (the Java 4 client sends the
        # name "" beside the id), and entries without an id are then ignored.
        by_id = v >= 12 and any(entry.get("topic_id", ZERO_UUID) != ZERO_UUID for entry in requested)
        for entry in requested:
            name, topic_id = entry.get("name"), entry.get("topic_id", ZERO_UUID)
            if by_id:
                if topic_id != ZERO_UUID:
                    topics.append(await _lookup(broker, None, topic_id, allow_auto))
                continue
            if name is None and v < 12:
                # As Kafka: topic ids may only be looked up from v12 (names are not nullable in v10-11 responses).
                topics.append(_error("", ErrorCode.INVALID_REQUEST, topic_id))
                continue
            topics.append(await _lookup(broker, name, topic_id, allow_auto))
    for t in topics:
        if t["error_code"] == 0:
            t["topic_authorized_operations"] = topic_ops
    return Msg(
        throttle_time_ms=0,
        brokers=[{"node_id": b.broker_id, "host": b.host, "port": b.port, "rack": b.rack} for b in broker.live_brokers()],
        cluster_id=broker.cluster_id,
        controller_id=broker.controller_id,
        topics=topics,
        cluster_authorized_operations=authorized_operations(
            "cluster", req.get("include_cluster_authorized_operations", False)),
    )


async def _lookup(broker: "Broker", name: str | None, topic_id: Any, allow_auto: bool) -> dict[str, Any]:
    if name is None:
        topic = broker.topic_by_id(topic_id)
        if topic is None:
            return _error(None, ErrorCode.UNKNOWN_TOPIC_ID, topic_id)
        return _topic(broker, topic)
    topic = broker.topic(name)
    if topic is None and allow_auto:
        try:
            topic = await broker.auto_create_topic(name)
        except InvalidTopicError:
            return _error(name, ErrorCode.INVALID_TOPIC_EXCEPTION)
        except KafkaStorageError:
            return _error(name, ErrorCode.KAFKA_STORAGE_ERROR)
    if topic is None:
        return _error(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return _topic(broker, topic)


def _error(name: str | None, code: ErrorCode, topic_id: Any = ZERO_UUID) -> dict[str, Any]:
    return {"error_code": code, "name": name, "topic_id": topic_id, "is_internal": False,
            "partitions": [], "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED}


def _topic(broker: "Broker", topic: "Topic", start: int = 0, limit: int | None = None) -> dict[str, Any]:
    end = topic.partitions if limit is None else min(topic.partitions, start + limit)
    partitions = []
    for p in range(start, end):
        state = broker.partitions.leader_and_isr(topic.name, p)
        code = ErrorCode.LEADER_NOT_AVAILABLE if state.leader_id < 0 else ErrorCode.NONE
        partitions.append({"error_code": code, "partition_index": p, "leader_id": state.leader_id,
                           "leader_epoch": state.leader_epoch, "replica_nodes": state.replicas,
                           "isr_nodes": state.isr, "offline_replicas": state.offline,
                           "eligible_leader_replicas": [], "last_known_elr": []})
    return {
        "error_code": 0, "name": topic.name, "topic_id": topic.topic_id, "is_internal": topic.is_internal,
        "partitions": partitions,
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


def _unknown_topic_error(name: str) -> ErrorCode:
    try:
        validate_topic_name(name)
    except InvalidTopicError:
        return ErrorCode.INVALID_TOPIC_EXCEPTION
    return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


@handles("DESCRIBE_TOPIC_PARTITIONS", 0, 0)
async def describe_topic_partitions(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    """KIP-966's paginated describe, as Kafka's DescribeTopicPartitionsRequestHandler: topics in
    name order from the cursor, at most response_partition_limit partitions (capped by
    max.request.partition.size.limit), next_cursor where the limit cut; no auto-creation."""
    cursor = req.cursor
    after = cursor.topic_name if cursor is not None else ""
    every = not req.topics
    names = sorted({t.name for t in broker.topics()} if every else {t.name for t in req.topics})
    names = [n for n in names if n >= after]
    if cursor is not None and ((not every and cursor.topic_name not in names) or cursor.partition_index < 0):
        return Msg(throttle_time_ms=0, next_cursor=None, topics=[
            {"error_code": ErrorCode.INVALID_REQUEST, "name": t.name, "topic_id": ZERO_UUID, "is_internal": False,
             "partitions": [], "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED} for t in req.topics])
    remaining = max(min(broker.config.max_request_partition_size_limit, req.response_partition_limit), 1)
    out: list[dict[str, Any]] = []
    next_cursor = None
    for name in names:
        if remaining == 0:
            next_cursor = {"topic_name": name, "partition_index": 0}
            break
        topic = broker.topic(name)
        if topic is None:
            if not every:
                out.append(_error(name, _unknown_topic_error(name)))
            continue
        start = cursor.partition_index if cursor is not None and name == cursor.topic_name else 0
        entry = _topic(broker, topic, start, remaining)
        entry["topic_authorized_operations"] = authorized_operations("topic")
        out.append(entry)
        shown = len(entry["partitions"])
        if start + shown < topic.partitions:
            next_cursor = {"topic_name": name, "partition_index": start + shown}
            break
        remaining -= shown
    return Msg(throttle_time_ms=0, topics=out, next_cursor=next_cursor)
