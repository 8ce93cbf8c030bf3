"""Replica assignment for new topics, after Kafka's AdminUtils.assignReplicasToBrokers.

Without racks: partition p's replicas start at broker (start + p) and follow the sorted broker list
with a shift that grows every time the partitions wrap around the brokers, so leaders and followers
both spread evenly. With racks (every broker has ``broker.rack``): the brokers are first ordered
alternating between racks (rack A's first, rack B's first, ..., rack A's second, ...) and a
partition takes consecutive brokers of that order, so that its replicas land on
min(replication factor, racks) distinct racks when the racks hold as many brokers each (Kafka's
rack-aware assignment gives the same guarantee with a more even spread of followers).
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Mapping


class AssignmentError(ValueError):
    """The replication factor cannot be met (INVALID_REPLICATION_FACTOR)."""


class InvalidReplicaAssignmentError(ValueError):
    """CreateTopics replica assignments naming brokers that are not live, or one twice (INVALID_REPLICA_ASSIGNMENT)."""


def rack_alternated(racks: Mapping[int, str | None]) -> list[int]:
    """Broker ids ordered so that neighbours are on different racks where possible."""
    by_rack: dict[str, list[int]] = defaultdict(list)
    for broker_id in sorted(racks):
        by_rack[racks[broker_id] or ""].append(broker_id)
    queues = [by_rack[r] for r in sorted(by_rack)]
    out: list[int] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def assign_replicas(partitions: int, replication_factor: int, racks: Mapping[int, str | None],
                    start: int | None = None, first_partition: int = 0) -> dict[int, tuple[int, ...]]:
    """Replica lists for partitions [first_partition, first_partition + partitions)."""
    if replication_factor < 1:
        raise AssignmentError(f"Replication factor must be larger than 0, not {replication_factor}")
    if replication_factor > len(racks):
        raise AssignmentError(f"Replication factor: {replication_factor} larger than available brokers: {len(racks)}.")
    use_racks = bool(racks) and all(racks.values())
    if not use_racks and any(racks.values()):
        raise AssignmentError("Not all brokers have rack information (broker.rack) for replica rack aware assignment.")
    brokers = rack_alternated(racks) if use_racks else sorted(racks)
    n = len(brokers)
    first = random.randrange(n) if start is None else start % n
    shift = random.randrange(n) if start is None else start % n
    out: dict[int, tuple[int, ...]] = {}
    for i in range(partitions):
        p = first_partition + i
        if p > 0 and p % n == 0:
            shift += 1
        leader = (first + p) % n
        replicas = [brokers[leader]]
        for j in range(replication_factor - 1):
            # Rack-aware: the next brokers in rack-alternated order (distinct racks); else Kafka's shifted spread.
            offset = j if use_racks else (shift + j) % (n - 1)
            replicas.append(brokers[(leader + 1 + offset) % n])
        out[p] = tuple(replicas)
    return out
