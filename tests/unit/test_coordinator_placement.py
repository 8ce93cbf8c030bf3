"""cluster/coordinator_placement.py: which broker coordinates a group in a cluster, and loading/unloading
a __consumer_offsets partition's groups as this broker's leadership of it comes and goes (the
transaction coordinator's __transaction_state is placed by the same class)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import trio

from pykbroker.cluster.coordinator_placement import CoordinatorPlacement, InternalTopic
from pykbroker.cluster.model import NO_LEADER, BrokerInfo, ClusterSnapshot, PartitionState, TopicAssignment
from pykbroker.coordinator.group_coordinator import GroupCoordinator
from pykbroker.coordinator.offsets_schema import CommittedOffset
from pykbroker.coordinator.ownership import partition_for
from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.records import iter_batches

OFFSETS_TOPIC = "__consumer_offsets"
BROKERS = {i: BrokerInfo(i, "127.0.0.1", 9000 + i) for i in (1, 2, 3)}


class FakeLog:
    """A partition log holding the coordinator's appended batches."""

    def __init__(self) -> None:
        self.batches: list[bytes] = []
        self.log_start_offset = 0

    def iter_batches(self, start: int) -> Any:
        for i, data in enumerate(self.batches[start:], start):
            header = next(iter_batches(data))[1]
            yield SimpleNamespace(last_offset=i, header=header), data


async def loaded(groups: GroupCoordinator) -> None:
    """Until the load (which reads in a worker thread) is done."""
    with trio.fail_after(5):
        while groups.status("g") == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            await trio.sleep(0.01)


def placement(snapshot: ClusterSnapshot, rf: int = 3) -> tuple[CoordinatorPlacement, Any]:
    plog = FakeLog()
    created: list[str] = []

    async def create_topic(name: str, *args: Any) -> uuid.UUID:
        created.append(name)
        return uuid.uuid4()

    groups = GroupCoordinator(lambda p, b: plog.batches.append(b), 3)
    broker = SimpleNamespace(
        cluster=SimpleNamespace(snapshot=snapshot, create_topic=create_topic),
        config=SimpleNamespace(offsets_commit_timeout_ms=1000),
        groups=groups, logs=SimpleNamespace(topics={}), created=created, plog=plog)
    spec = InternalTopic(OFFSETS_TOPIC, 3, rf, "offsets.topic.replication.factor", 1 << 20, "groups")
    return CoordinatorPlacement(broker, spec, groups), broker  # type: ignore[arg-type]


def trio_test(fn: Any) -> Any:
    """Run the async test under trio (the unit tests use no async plugin)."""
    def run() -> None:
        trio.run(fn)
    run.__name__ = fn.__name__
    return run


@trio_test
async def test_offsets_topic_is_not_created_while_fewer_brokers_than_its_replication_factor_live() -> None:
    place, broker = placement(ClusterSnapshot(brokers={1: BROKERS[1], 2: BROKERS[2]}))
    assert await place.coordinator_for("g") == (ErrorCode.COORDINATOR_NOT_AVAILABLE, None)
    assert broker.created == []
    broker.cluster.snapshot.brokers[3] = BROKERS[3]
    await place.coordinator_for("g")
    assert broker.created == [OFFSETS_TOPIC]


@trio_test
async def test_the_coordinator_is_the_leader_of_the_groups_partition() -> None:
    p = partition_for("g", 3)
    snap = ClusterSnapshot(brokers=dict(BROKERS), topics={OFFSETS_TOPIC: TopicAssignment(
        OFFSETS_TOPIC, uuid.uuid4(), {i: (1, 2, 3) for i in range(3)})},
        states={(OFFSETS_TOPIC, i): PartitionState(1, 0, (1, 2, 3), 1) for i in range(3)})
    snap.states[(OFFSETS_TOPIC, p)] = PartitionState(2, 4, (2, 3), 1)
    place, broker = placement(snap)
    assert await place.coordinator_for("g") == (ErrorCode.NONE, BROKERS[2])
    snap.states[(OFFSETS_TOPIC, p)] = PartitionState(NO_LEADER, 5, (), 1)
    assert await place.coordinator_for("g") == (ErrorCode.COORDINATOR_NOT_AVAILABLE, None)
    assert broker.created == []


@trio_test
async def test_leadership_loads_the_partitions_groups_and_losing_it_unloads_them() -> None:
    place, broker = placement(ClusterSnapshot(brokers=dict(BROKERS)))
    groups: GroupCoordinator = broker.groups
    index = groups.partition_for("g")
    part = SimpleNamespace(topic=OFFSETS_TOPIC, index=index, leader_epoch=3, leader_id=1, log=broker.plog,
                           log_start_offset=0, replication=SimpleNamespace(is_leader=True))
    assert groups.status("g") == ErrorCode.NOT_COORDINATOR
    async with trio.open_nursery() as nursery:
        place.attach(nursery)
        place.role_changed(part)  # type: ignore[arg-type]
        assert groups.status("g") == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        await loaded(groups)
        assert groups.status("g") == ErrorCode.NONE
        assert groups.commit("g", {("t", 0): CommittedOffset(7, -1, "", 1000)}) == ErrorCode.NONE

        part.replication.is_leader, part.leader_id, part.leader_epoch = False, 2, 4
        place.role_changed(part)  # type: ignore[arg-type]
        assert groups.status("g") == ErrorCode.NOT_COORDINATOR
        assert groups.fetch_offsets("g")[0] == ErrorCode.NOT_COORDINATOR

        part.replication.is_leader, part.leader_id, part.leader_epoch = True, 1, 5
        place.role_changed(part)  # type: ignore[arg-type]
        await loaded(groups)
        code, offsets = groups.fetch_offsets("g")
        assert code == ErrorCode.NONE and offsets[("t", 0)].offset == 7  # replayed from the log
