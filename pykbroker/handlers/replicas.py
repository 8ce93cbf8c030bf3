"""Replica management: DescribeLogDirs, AlterReplicaLogDirs, ElectLeaders, List/AlterPartitionReassignments.

One node holds every replica in one log directory, so these answer as Kafka does when nothing can
move: the preferred leader already leads (ELECTION_NOT_NEEDED), no reassignment is in progress, and a
reassignment onto this node alone is already done. In a cluster ElectLeaders is the controller's
(cluster/elections.py, cluster/node.py).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..protocol.errors import ErrorCode
from ..protocol.primitives import Msg
from ..cluster.elections import PREFERRED
from .admin import replicas_error
from .registry import RequestContext, handles

if TYPE_CHECKING:
    from ..broker import Broker


def _requested(broker: "Broker", topics: list[Msg] | None) -> list[tuple[str, list[int]]]:
    """(topic, partitions) asked for; None means every partition of every topic."""
    if topics is None:
        return [(t.name, list(range(t.partitions))) for t in broker.topics()]
    return [(t.topic, list(t.partitions)) for t in topics]


# v5 (Kafka 4.2+, KIP-1066) adds is_cordoned: this log directory never is.
@handles("DESCRIBE_LOG_DIRS", 0, 5)
async def describe_log_dirs(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    topics = []
    for name, partitions in _requested(broker, req.topics):
        sizes = [{"partition_index": p, "partition_size": part.log.size_in_bytes, "offset_lag": 0,
                  "is_future_key": False} for p in partitions if (part := broker.partition(name, p)) is not None]
        if sizes:
            topics.append({"name": name, "partitions": sizes})
    try:
        disk = os.statvfs(broker.data_dir)
        total, usable = disk.f_blocks * disk.f_frsize, disk.f_bavail * disk.f_frsize
    except OSError:
        total = usable = -1
    return Msg(throttle_time_ms=0, error_code=0, results=[
        {"error_code": 0, "log_dir": str(broker.data_dir.resolve()), "topics": topics,
         "total_bytes": total, "usable_bytes": usable, "is_cordoned": False}])


def _log_dir_names(broker: "Broker") -> set[str]:
    """The one log directory as a client may name it: absolute (Kafka compares getAbsolutePath) or resolved."""
    return {str(broker.data_dir.absolute()), str(broker.data_dir.resolve())}


@handles("ALTER_REPLICA_LOG_DIRS", 0, 2)
async def alter_replica_log_dirs(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    """Every replica already lives in the one log directory: moving it there is done (as Kafka
    answers a move to the replica's current directory); any other path is LOG_DIR_NOT_FOUND,
    checked first as in Kafka's ReplicaManager.alterReplicaLogDirs."""
    dirs = _log_dir_names(broker)
    results: dict[str, list[dict[str, Any]]] = {}
    for d in req.dirs:
        for t in d.topics:
            for p in t.partitions:
                if d.path not in dirs:
                    code = ErrorCode.LOG_DIR_NOT_FOUND
                elif broker.partition(t.name, p) is None:
                    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                else:
                    code = ErrorCode.NONE
                results.setdefault(t.name, []).append({"partition_index": p, "error_code": code})
    return Msg(throttle_time_ms=0, results=[{"topic_name": name, "partitions": parts}
                                            for name, parts in results.items()])


@handles("ELECT_LEADERS", 0, 2)
async def elect_leaders(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    if broker.cluster is not None:
        return await _elect_in_cluster(broker, req)
    results = []
    every = req.topic_partitions is None
    for name, partitions in _requested(broker, req.topic_partitions):
        out = []
        for p in partitions:
            if broker.partition(name, p) is None:
                out.append({"partition_id": p, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                            "error_message": f"{name}-{p} does not exist"})
            elif not every:  # Kafka leaves partitions that need no election out of an "all" answer
                out.append({"partition_id": p, "error_code": ErrorCode.ELECTION_NOT_NEEDED,
                            "error_message": "the preferred leader is the leader already"})
        if out:
            results.append({"topic": name, "partition_result": out})
    return Msg(throttle_time_ms=0, error_code=0, replica_election_results=results)


async def _elect_in_cluster(broker: "Broker", req: Msg) -> Msg:
    """The controller elects (cluster/node.py); v0 has no election_type and means PREFERRED. For
    "all partitions" Kafka leaves out those that needed no election (KafkaApis.handleElectLeaders)."""
    assert broker.cluster is not None
    every = req.topic_partitions is None
    asked = None if every else [(t.topic, p) for t in req.topic_partitions for p in t.partitions]
    outcome = await broker.cluster.elect_leaders(asked, req.get("election_type", PREFERRED), req.timeout_ms / 1000)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for (topic, p), e in outcome.items():
        if not (every and e.error == ErrorCode.ELECTION_NOT_NEEDED):
            by_topic.setdefault(topic, []).append({"partition_id": p, "error_code": e.error, "error_message": e.message})
    return Msg(throttle_time_ms=0, error_code=0, replica_election_results=[
        {"topic": t, "partition_result": parts} for t, parts in by_topic.items()])


@handles("LIST_PARTITION_REASSIGNMENTS", 0, 0)
async def list_partition_reassignments(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    return Msg(throttle_time_ms=0, error_code=0, error_message=None, topics=[])  # none ever in progress


# v1 (KIP-860) adds allow_replication_factor_change: every assignment that passes Kafka's checks here
# is [this node], which never changes a replication factor of 1, so the flag is only echoed.
@handles("ALTER_PARTITION_REASSIGNMENTS", 0, 1)
async def alter_partition_reassignments(broker: "Broker", ctx: RequestContext, req: Msg) -> Msg:
    responses = []
    for t in req.topics:
        parts: list[dict[str, Any]] = []
        for p in t.partitions:
            code, message = ErrorCode.NONE, None
            if broker.topic(t.name) is None:
                code, message = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find a topic named {t.name}."
            elif broker.partition(t.name, p.partition_index) is None:
                code, message = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Unable to find partition {t.name}:{p.partition_index}."
            elif p.replicas is None:
                code = ErrorCode.NO_REASSIGNMENT_IN_PROGRESS  # Kafka sends no message with it
            elif (message := replicas_error(list(p.replicas), broker.node_id)) is not None:
                code = ErrorCode.INVALID_REPLICA_ASSIGNMENT
            parts.append({"partition_index": p.partition_index, "error_code": code, "error_message": message})
        responses.append({"name": t.name, "partitions": parts})
    return Msg(throttle_time_ms=0, allow_replication_factor_change=req.get("allow_replication_factor_change", True),
               error_code=0, error_message=None, responses=responses)
