"""The group coordinator in a cluster: __consumer_offsets is a replicated cluster topic and the
coordinator of a group is the leader of its partition (Kafka's GroupCoordinator in ZooKeeper mode).

- the topic is created through ZooKeeper on the first FindCoordinator, and, as Kafka's
  AutoTopicCreationManager, only once ``offsets.topic.replication.factor`` brokers are alive
  (COORDINATOR_NOT_AVAILABLE meanwhile);
- becoming leader of one of its partitions loads that partition's groups (LOAD_IN_PROGRESS
  meanwhile); becoming follower unloads them (parked calls get NOT_COORDINATOR);
- a coordinator write is answered once the partition's ISR has it (offsets.commit.required.acks=-1).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

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

OFFSETS_TOPIC = "__consumer_offsets"
CREATE_TIMEOUT_S = 10


class GroupPlacement:
    topic = OFFSETS_TOPIC

    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        #: Partition -> leader epoch this broker loads or serves it at (Kafka's coordinator epoch).
        self._epochs: dict[int, int] = {}
        self._nursery: trio.Nursery | None = None
        self._create_lock = trio.Lock()

    def attach(self, nursery: trio.Nursery | None) -> None:
        self._nursery = nursery

    # ------------------------------------------------------------------ FindCoordinator

    async def coordinator(self, group_id: str) -> tuple[ErrorCode, BrokerInfo | None]:
        """The broker leading the group's partition, creating the topic on first need."""
        cluster = self.broker.cluster
        assert cluster is not None
        assignment = cluster.snapshot.topics.get(OFFSETS_TOPIC)
        if assignment is None:
            code = await self._create()
            if code:
                return code, None
            assignment = cluster.snapshot.topics.get(OFFSETS_TOPIC)
            if assignment is None:
                return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
        partition = partition_for(group_id, len(assignment.replicas))
        state = cluster.snapshot.states.get((OFFSETS_TOPIC, partition))
        leader = cluster.snapshot.brokers.get(state.leader) if state is not None and state.leader != NO_LEADER else None
        if leader is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, None
        return ErrorCode.NONE, leader

    async def _create(self) -> ErrorCode:
        cluster = self.broker.cluster
        assert cluster is not None
        config = self.broker.config
        rf = config.offsets_topic_replication_factor
        async with self._create_lock:
            if OFFSETS_TOPIC in cluster.snapshot.topics:
                return ErrorCode.NONE
            alive = len(cluster.snapshot.brokers)
            if alive < rf:
                log.warning("%s not created: offsets.topic.replication.factor is %d but %d broker(s) are alive",
                            OFFSETS_TOPIC, rf, alive)
                return ErrorCode.COORDINATOR_NOT_AVAILABLE
            from ..broker import compacted_topic_configs
            try:
                await cluster.create_topic(OFFSETS_TOPIC, config.offsets_topic_num_partitions, rf, None,
                                           compacted_topic_configs(config.offsets_topic_segment_bytes),
                                           CREATE_TIMEOUT_S)
            except TopicExistsError:
                pass
            log.info("created %s in the cluster (%d partition(s), replication factor %d)", OFFSETS_TOPIC,
                     config.offsets_topic_num_partitions, rf)
        return ErrorCode.NONE

    # ------------------------------------------------------------------ roles

    def role_changed(self, p: "Partition") -> None:
        """Called after every become_leader/become_follower of a __consumer_offsets partition."""
        groups = self.broker.groups
        assert p.replication is not None
        if p.replication.is_leader:
            if self._epochs.get(p.index) == p.leader_epoch:
                return
            topic = self.broker.logs.topics.get(OFFSETS_TOPIC)
            if topic is not None:
                groups.partitions = topic.partitions
            if p.index in self._epochs:
                groups.unload(p.index)
            self._epochs[p.index] = p.leader_epoch
            groups.begin_load(p.index)
            if self._nursery is not None:
                self._nursery.start_soon(self._load, p, p.leader_epoch)
        elif self._epochs.pop(p.index, None) is not None:
            groups.unload(p.index)
            log.info("%s-%d: groups unloaded (leader is now %d)", OFFSETS_TOPIC, p.index, p.leader_id)

    async def _load(self, p: "Partition", epoch: int) -> None:
        from ..broker import _read_chunk
        groups = self.broker.groups
        start, batches = p.log_start_offset, 0
        while self._epochs.get(p.index) == epoch:
            chunk, start = await trio.to_thread.run_sync(_read_chunk, p.log, start)
            if not chunk:
                break
            if self._epochs.get(p.index) != epoch:
                return
            batches += groups.replay(p.index, chunk)
        if self._epochs.get(p.index) == epoch:
            groups.finish_load(p.index)
            log.info("%s-%d: groups loaded at leader epoch %d (%d batch(es))", OFFSETS_TOPIC, p.index, epoch,
                     batches)

    # ------------------------------------------------------------------ acks=all

    async def replicated(self, group_id: str) -> ErrorCode:
        """Wait until the ISR of the group's partition has everything written to it so far."""
        p = self.broker.partitions.get(OFFSETS_TOPIC, self.broker.groups.partition_for(group_id))
        if p is None or p.replication is None:
            return ErrorCode.NONE
        deadline = trio.current_time() + self.broker.config.offsets_commit_timeout_ms / 1000
        code = await wait_for_replication(p, p.log_end_offset, p.leader_epoch, deadline)
        if code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
            return ErrorCode.NOT_COORDINATOR
        if code:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return ErrorCode.NONE
