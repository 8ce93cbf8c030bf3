"""All partitions this broker hosts (Kafka's ``ReplicaManager``, single node for now).

Routes handlers to ``Partition`` objects, created on first use from the log manager's logs, and runs
the periodic disk work (flush.ms, retention) partition by partition off the event loop. Background
work (rolled-segment fsyncs) is spawned into the nursery the broker gives it while running.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

import trio

from ..log.manager import LogManager
from .hw_checkpoint import Offsets, read_checkpoint, write_checkpoint
from .partition import Partition

if TYPE_CHECKING:
    from .node import ClusterNode

log = logging.getLogger("pykbroker.partition")


class LeaderAndIsr(NamedTuple):
    """What Metadata and DescribeTopicPartitions report about a partition's replicas."""

    leader_id: int
    leader_epoch: int
    replicas: list[int]
    isr: list[int]
    offline: list[int] = []


class PartitionManager:
    def __init__(self, logs: LogManager, node_id: int) -> None:
        self.logs = logs
        self.node_id = node_id
        self._partitions: dict[tuple[str, int], Partition] = {}
        self._nursery: trio.Nursery | None = None
        #: Cluster mode: the node that knows leaders and ISRs; its topics' partitions replicate.
        self.cluster: "ClusterNode | None" = None
        #: Topics that stay single-node even in a cluster (the internal topics, for now).
        self.local_topics: frozenset[str] = frozenset()
        #: Cluster mode: the high watermarks checkpointed by the previous run (read on first use).
        self._hw_checkpoint: Offsets | None = None

    def attach(self, nursery: trio.Nursery | None) -> None:
        """Background work goes into ``nursery`` from now on (None: done inline)."""
        self._nursery = nursery
        spawn = self._spawn if nursery is not None else None
        for p in self._partitions.values():
            p._spawn = spawn

    def _spawn(self, fn: Callable[[], Any]) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(fn)

    def get(self, topic: str, index: int) -> Partition | None:
        key = (topic, index)
        partition = self._partitions.get(key)
        if partition is None:
            try:
                plog = self.logs.get_log(topic, index)
            except KeyError:
                return None
            spawn = self._spawn if self._nursery is not None else None
            partition = self._partitions[key] = Partition(topic, index, plog, self.node_id, spawn)
            if self.cluster is not None and topic not in self.local_topics:
                if self._hw_checkpoint is None:
                    self._hw_checkpoint = read_checkpoint(self.logs.log_dir)
                partition.join_cluster(self._hw_checkpoint.get(key))
        return partition

    def leader_and_isr(self, topic: str, index: int) -> LeaderAndIsr:
        if self.cluster is not None and topic not in self.local_topics:
            return self.cluster.leader_and_isr(topic, index) or LeaderAndIsr(-1, 0, [], [])
        p = self._partitions.get((topic, index))
        if p is None:  # not used yet: this node leads it at epoch 0 (single node)
            return LeaderAndIsr(self.node_id, 0, [self.node_id], [self.node_id])
        return LeaderAndIsr(p.leader_id, p.leader_epoch, list(p.replicas), list(p.isr))

    def drop_topic(self, topic: str) -> list[Partition]:
        """Forget a deleted topic's partitions; returns them so the caller can close them."""
        keys = [k for k in self._partitions if k[0] == topic]
        return [self._partitions.pop(k) for k in keys]

    def __iter__(self) -> Iterator[Partition]:
        return iter(list(self._partitions.values()))

    def all_partitions(self) -> Iterator[Partition]:
        """Every hosted partition (created from its log on first use)."""
        return self._all()

    def _all(self) -> Iterator[Partition]:
        for topic, index, _ in list(self.logs.logs()):
            p = self.get(topic, index)
            if p is not None:
                yield p

    def high_watermarks(self) -> Offsets:
        """Every replicated partition's high watermark now (for the checkpoint)."""
        return {(p.topic, p.index): p.high_watermark for p in self._partitions.values()
                if p.replication is not None and not p.closed}

    async def checkpoint_high_watermarks(self) -> None:
        """replica.high.watermark.checkpoint.interval.ms: the values taken on the loop, written off it."""
        offsets = self.high_watermarks()
        try:
            await trio.to_thread.run_sync(lambda: write_checkpoint(self.logs.log_dir, offsets, fsync=self.logs.fsync))
        except OSError as e:
            log.error("%s/replication-offset-checkpoint not written: %s", self.logs.log_dir, e)

    def snapshot_producers(self) -> None:
        """Clean shutdown: snapshot every partition's producer state, so start-up needs no rescan."""
        for p in self._partitions.values():
            try:
                p.write_producer_snapshot(*p.snapshot_producers())
            except OSError as e:
                log.error("%s-%d: producer snapshot not written: %s", p.topic, p.index, e)

    def expire_producers(self, now_ms: int, expiration_ms: int) -> int:
        """producer.id.expiration.ms: forget producers idle that long on every partition (as Kafka,
        by their last batch's timestamp); a later batch of theirs starts a new sequence (KIP-360)."""
        return sum(len(p.producers.expire(now_ms, expiration_ms)) for p in self._all())

    async def flush_due(self) -> None:
        """flush.ms for every partition, each fsync in a worker thread."""
        for p in self._all():
            try:
                await p.flush_if_due()
            except Exception as e:  # one failing disk must not stop the others' flushes
                log.error("%s-%d: time-based flush failed: %s", p.topic, p.index, e)

    async def run_retention(self, now_ms: int | None = None) -> int:
        deleted = 0
        for p in self._all():
            try:
                deleted += await p.delete_old_segments(now_ms)
            except Exception as e:
                log.error("%s-%d: retention failed: %s", p.topic, p.index, e)
        return deleted
