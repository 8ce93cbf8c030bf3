"""CreateTopics and DeleteTopics (single node: replication factor 1, this node leads everything).

The broker writes topic metadata in a worker thread; a failing disk (ENOSPC, EIO) is answered
per topic with KAFKA_STORAGE_ERROR and leaves the topic as it was.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..log.errors import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    KafkaStorageError,
    TopicExistsError,
    UnknownTopicOrPartitionError,
)
from ..cluster.assignment import AssignmentError, InvalidReplicaAssignmentError
from ..protocol.errors import ErrorCode
from ..protocol.primitives import ZERO_UUID, Msg
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker

log = logging.getLogger("pykbroker.topics")


@handles("CREATE_TOPICS", 0, 7)
async def create_topics(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    timeout_s = max(req.get("timeout_ms", 30000), 0) / 1000
    results = [await _create(broker, t, req.get("validate_only", False), timeout_s) for t in req.topics]
    return Msg(throttle_time_ms=0, topics=results)


async def _create(broker: "Broker", t: Msg, validate_only: bool, timeout_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"name": t.name, "topic_id": ZERO_UUID, "error_code": 0, "error_message": None,
                           "num_partitions": -1, "replication_factor": -1, "configs": None}
    partitions = t.num_partitions
    replication = t.replication_factor
    if t.assignments:
        if partitions != -1 or replication != -1:
            return _fail(out, ErrorCode.INVALID_REQUEST,
                         "both replica assignments and partitions/replication factor were given")
        if broker.cluster is None and any(r != broker.node_id for a in t.assignments for r in a.broker_ids):
            return _fail(out, ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                         f"replicas must be on this broker (node {broker.node_id})")
        if sorted(a.partition_index for a in t.assignments) != list(range(len(t.assignments))):
            return _fail(out, ErrorCode.INVALID_REPLICA_ASSIGNMENT, "partitions must be numbered 0..n-1")
        partitions, replication = len(t.assignments), len(t.assignments[0].broker_ids)
        if any(len(a.broker_ids) != replication for a in t.assignments):
            return _fail(out, ErrorCode.INVALID_REPLICA_ASSIGNMENT, "all partitions must have as many replicas")
    if partitions == -1:
        partitions = broker.config.num_partitions
    if replication == -1:
        replication = broker.config.default_replication_factor
    if partitions <= 0:
        return _fail(out, ErrorCode.INVALID_PARTITIONS, f"number of partitions must be larger than 0 (got {partitions})")
    if replication <= 0:
        return _fail(out, ErrorCode.INVALID_REPLICATION_FACTOR, "replication factor must be larger than 0")
    live = len(broker.live_brokers())
    if replication > live:
        return _fail(out, ErrorCode.INVALID_REPLICATION_FACTOR,
                     f"Replication factor: {replication} larger than available brokers: {live}.")
    configs = {c.name: c.value for c in t.configs}
    assignments = {a.partition_index: list(a.broker_ids) for a in t.assignments} if t.assignments else None
    try:
        topic = await broker.create_topic(t.name, partitions, configs, validate_only=validate_only,
                                          replication_factor=replication, assignments=assignments,
                                          timeout_s=timeout_s)
    except TopicExistsError as e:
        return _fail(out, ErrorCode.TOPIC_ALREADY_EXISTS, str(e) or f"topic '{t.name}' already exists")
    except InvalidTopicError as e:
        return _fail(out, ErrorCode.INVALID_TOPIC_EXCEPTION, str(e))
    except InvalidConfigError as e:
        return _fail(out, ErrorCode.INVALID_CONFIG, str(e))
    except InvalidPartitionsError as e:
        return _fail(out, ErrorCode.INVALID_PARTITIONS, str(e))
    except AssignmentError as e:
        return _fail(out, ErrorCode.INVALID_REPLICATION_FACTOR, str(e))
    except InvalidReplicaAssignmentError as e:
        return _fail(out, ErrorCode.INVALID_REPLICA_ASSIGNMENT, str(e))
    except KafkaStorageError as e:
        log.error("CreateTopics %s: %s", t.name, e)
        return _fail(out, ErrorCode.KAFKA_STORAGE_ERROR, str(e))
    out.update(topic_id=topic.topic_id, num_partitions=partitions, replication_factor=replication,
               configs=[{"name": k, "value": v, "read_only": False, "config_source": 1 if k in configs else 5,
                         "is_sensitive": False} for k, v in sorted(broker.logs.topics[t.name].config.to_kafka_configs().items())]
               if not validate_only and t.name in broker.logs.topics else [])
    return out


def _fail(out: dict[str, Any], code: ErrorCode, message: str) -> dict[str, Any]:
    out.update(error_code=code, error_message=message)
    return out


@handles("DELETE_TOPICS", 0, 6)
async def delete_topics(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    if ctx.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in req.topics]
    else:
        wanted = [(name, ZERO_UUID) for name in req.topic_names]
    return Msg(throttle_time_ms=0, responses=[await _delete(broker, name, topic_id, req.timeout_ms)
                                              for name, topic_id in wanted])


async def _delete(broker: "Broker", name: str | None, topic_id: Any, timeout_ms: int) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "topic_id": topic_id, "error_code": 0, "error_message": None}
    topic = broker.topic(name) if name is not None else broker.topic_by_id(topic_id)
    if topic is None:
        code = ErrorCode.UNKNOWN_TOPIC_ID if name is None else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return _fail(out, code, "no such topic")
    if not broker.config.delete_topic_enable:
        return _fail(out, ErrorCode.TOPIC_DELETION_DISABLED, "delete.topic.enable is false")
    out.update(name=topic.name, topic_id=topic.topic_id)
    try:
        if broker.cluster is not None and broker.cluster.has_topic(topic.name):
            if not await broker.cluster.delete_topic(topic.name, timeout_ms / 1000):
                return _fail(out, ErrorCode.REQUEST_TIMED_OUT, "the deletion is queued and not complete yet")
            return out
        await broker.delete_topic(topic.name)
    except UnknownTopicOrPartitionError:  # deleted meanwhile by a concurrent request
        return _fail(out, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "no such topic")
    except KafkaStorageError as e:
        log.error("DeleteTopics %s: %s", topic.name, e)
        return _fail(out, ErrorCode.KAFKA_STORAGE_ERROR, str(e))
    return out
