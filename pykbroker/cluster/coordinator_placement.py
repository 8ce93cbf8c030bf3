"""The coordinators in a cluster: __consumer_offsets and __transaction_state are replicated cluster
topics, and the coordinator of a group (of a transactional id) is the leader of its partition
(Kafka's GroupCoordinator and TransactionCoordinator in ZooKeeper mode). One class serves both:

- the topic is created through ZooKeeper on the first FindCoordinator, and, as Kafka's
  AutoTopicCreationManager, only once its replication factor's worth of brokers are alive
  (COORDINATOR_NOT_AVAILABLE meanwhile);
- becoming leader of one of its partitions loads that partition's state (LOAD_IN_PROGRESS
  meanwhile); becoming follower unloads it (parked calls get NOT_COORDINATOR);
- a coordinator write is answered once the partition's ISR has it (offsets.commit.required.acks=-1;
  Kafka's transaction coordinator appends with acks=-1 too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Protocol

import trio

from ..coordinator.ownership import partition_for
from ..log.errors import TopicExistsError
from ..protocol.errors import ErrorCode
from .model import NO_LEADER, BrokerInfo
from .roles import wait_for_replication

if TYPE_CHECKING:
    from ..broker import Broker
    from .partition import Partition

log = logging.getLogger("pykbroker.cluster")

CREATE_TIMEOUT_S = 10


class Coordinator(Protocol):
    """What the group and transaction coordinators both offer for loading and unloading."""

    partitions: int

    def partition_for(self, key: str) -> int: ...
    def begin_load(self, partition: int) -> None: ...
    def replay(self, partition: int, batches: Iterable[bytes]) -> int: ...
    def finish_load(self, partition: int) -> None: ...
    def unload(self, partition: int) -> None: ...


@dataclass(frozen=True)
class InternalTopic:
    """How a coordinator's topic is created: partitions, replication factor (and the setting that
    names it, for the operator's message), segment.bytes."""

    name: str
    partitions: int
    replication_factor: int
    replication_setting: str
    segment_bytes: int
    #: What the coordinator keeps there, for log lines ("groups", "transactional ids").
    what: str


class CoordinatorPlacement:
    def __init__(self, broker: "Broker", spec: InternalTopic, coordinator: Coordinator) -> None:
        self.broker = broker
        self.spec = spec
        self.topic = spec.name
        self.coordinator = coordinator
        #: Partition -> leader epoch this broker loads or serves it at (Kafka's coordinator epoch).
        self._epochs: dict[int, int] = {}
        self._nursery: trio.Nursery | None = None
        self._create_lock = trio.Lock()

    def attach(self, nursery: trio.Nursery | None) -> None:
        self._nursery = nursery

    # ------------------------------------------------------------------ FindCoordinator

    async def coordinator_for(self, key: str) -> tuple[ErrorCode, BrokerInfo | None]:
        """The broker leading the key's partition, creating the topic on first need."""
        cluster = self.broker.cluster
        assert cluster is not None
        assignment = cluster.snapshot.topics.get(self.topic)
        if assignment is None:
            code = await self._create()
            if code:
                return code, None
            assignment = cluster.snapshot.topics.get(self.topic)
            if assignment is None:
                return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
        partition = partition_for(key, len(assignment.replicas))
        state = cluster.snapshot.states.get((self.topic, partition))
        leader = cluster.snapshot.brokers.get(state.leader) if state is not None and state.leader != NO_LEADER else None
        if leader is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
        return ErrorCode.NONE, leader

    async def _create(self) -> ErrorCode:
        cluster = self.broker.cluster
        assert cluster is not None
        spec = self.spec
        rf = spec.replication_factor
        async with self._create_lock:
            if self.topic in cluster.snapshot.topics:
                return ErrorCode.NONE
            alive = len(cluster.snapshot.brokers)
            if alive < rf:
                log.warning("%s not created: %s is %d but %d broker(s) are alive",
                            self.topic, spec.replication_setting, rf, alive)
                return ErrorCode.COORDINATOR_NOT_AVAILABLE
            from ..broker import compacted_topic_configs
            try:
                await cluster.create_topic(self.topic, spec.partitions, rf, None,
                                           compacted_topic_configs(spec.segment_bytes), CREATE_TIMEOUT_S)
            except TopicExistsError:
                pass
            log.info("created %s in the cluster (%d partition(s), replication factor %d)", self.topic,
                     spec.partitions, rf)
        return ErrorCode.NONE

    # ------------------------------------------------------------------ roles

    def role_changed(self, p: "Partition") -> None:
        """Called after every become_leader/become_follower of one of the topic's partitions."""
        coordinator = self.coordinator
        assert p.replication is not None
        if p.replication.is_leader:
            if self._epochs.get(p.index) == p.leader_epoch:
                return
            topic = self.broker.logs.topics.get(self.topic)
            if topic is not None:
                coordinator.partitions = topic.partitions
            if p.index in self._epochs:
                coordinator.unload(p.index)
            self._epochs[p.index] = p.leader_epoch
            coordinator.begin_load(p.index)
            if self._nursery is not None:
                self._nursery.start_soon(self._load, p, p.leader_epoch)
        elif self._epochs.pop(p.index, None) is not None:
            coordinator.unload(p.index)
            log.info("%s-%d: %s unloaded (leader is now %d)", self.topic, p.index, self.spec.what, p.leader_id)

    def epoch(self, key: str) -> int:
        """The leader epoch this broker serves the key's partition at (Kafka's coordinator epoch);
        -1 if it does not serve it."""
        return self._epochs.get(self.coordinator.partition_for(key), -1)

    async def _load(self, p: "Partition", epoch: int) -> None:
        from ..broker import _read_chunk
        coordinator = self.coordinator
        start, batches = p.log_start_offset, 0
        while self._epochs.get(p.index) == epoch:
            chunk, start = await trio.to_thread.run_sync(_read_chunk, p.log, start)
            if not chunk:
                break
            if self._epochs.get(p.index) != epoch:
                return
            batches += coordinator.replay(p.index, chunk)
        if self._epochs.get(p.index) == epoch:
            coordinator.finish_load(p.index)
            log.info("%s-%d: %s loaded at leader epoch %d (%d batch(es))", self.topic, p.index, self.spec.what,
                     epoch, batches)

    # ------------------------------------------------------------------ acks=all

    async def replicated(self, key: str) -> ErrorCode:
        """Wait until the ISR of the key's partition has everything written to it so far."""
        p = self.broker.partitions.get(self.topic, self.coordinator.partition_for(key))
        if p is None or p.replication is None:
            return ErrorCode.NONE
        deadline = trio.current_time() + self.broker.config.offsets_commit_timeout_ms / 1000
        code = await wait_for_replication(p, p.log_end_offset, p.leader_epoch, deadline)
        if code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
            return ErrorCode.NOT_COORDINATOR
        if code:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return ErrorCode.NONE
