"""The controller's decisions (cluster/controller.py) and replica assignment (cluster/assignment.py):
pure functions of a ZooKeeper snapshot, checked without ZooKeeper."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from pykbroker.cluster.assignment import AssignmentError, assign_replicas, rack_alternated
from pykbroker.cluster.controller import plan
from pykbroker.cluster.model import BrokerInfo, ClusterSnapshot, PartitionState, TopicAssignment


def snapshot(live: list[int], replicas: tuple[int, ...], state: PartitionState | None) -> ClusterSnapshot:
    snap = ClusterSnapshot(brokers={i: BrokerInfo(i, "127.0.0.1", 9000 + i) for i in live})
    snap.topics["t"] = TopicAssignment("t", uuid.uuid4(), {0: replicas})
    if state is not None:
        snap.states[("t", 0)] = state
    return snap


def test_a_new_partition_is_led_by_its_first_live_replica() -> None:
    [w] = plan(snapshot([1, 3], (2, 3, 1), None), controller_epoch=4)
    assert w.create and (w.state.leader, w.state.leader_epoch, w.state.isr, w.state.controller_epoch) == (3, 0, (3, 1), 4)


def test_a_new_partition_without_live_replicas_waits() -> None:
    assert plan(snapshot([4], (1, 2), None), 1) == []


def test_nothing_to_do_when_leader_and_isr_are_live() -> None:
    assert plan(snapshot([1, 2, 3], (1, 2, 3), PartitionState(1, 5, (1, 2, 3), 1, 7)), 2) == []


def test_leader_loss_elects_the_first_live_isr_replica_at_the_next_epoch() -> None:
    [w] = plan(snapshot([2, 3], (1, 2, 3), PartitionState(1, 5, (1, 3), 1, 7)), 2)
    assert not w.create
    # 2 is live but out of the ISR: 3 is elected, the conditional write is on version 7
    assert (w.state.leader, w.state.leader_epoch, w.state.isr, w.state.zk_version) == (3, 6, (3,), 7)


def test_no_unclean_election_the_isr_is_kept_and_its_member_leads_when_back() -> None:
    [w] = plan(snapshot([2], (1, 2), PartitionState(1, 5, (1,), 1, 7)), 2)
    assert (w.state.leader, w.state.leader_epoch, w.state.isr) == (-1, 6, (1,))
    offline = PartitionState(-1, 6, (1,), 2, 8)
    assert plan(snapshot([2], (1, 2), offline), 2) == []
    [back] = plan(snapshot([1, 2], (1, 2), offline), 2)
    assert (back.state.leader, back.state.leader_epoch, back.state.isr) == (1, 7, (1,))


def test_a_lost_follower_leaves_the_isr_without_a_new_epoch() -> None:
    [w] = plan(snapshot([1, 3], (1, 2, 3), PartitionState(1, 5, (1, 2, 3), 1, 7)), 2)
    assert (w.state.leader, w.state.leader_epoch, w.state.isr) == (1, 5, (1, 3))


def test_assignment_spreads_leaders_and_keeps_replicas_distinct() -> None:
    out = assign_replicas(6, 3, {1: None, 2: None, 3: None}, start=0)
    assert all(len(set(r)) == 3 for r in out.values())
    assert Counter(r[0] for r in out.values()) == {1: 2, 2: 2, 3: 2}


def test_rack_aware_assignment_puts_replicas_on_distinct_racks() -> None:
    racks = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    assert rack_alternated(racks) == [1, 3, 5, 2, 4, 6]
    for start in range(6):
        for replicas in assign_replicas(12, 3, racks, start=start).values():
            assert len({racks[r] for r in replicas}) == 3


@pytest.mark.parametrize("rf, racks, message", [
    (4, {1: None, 2: None, 3: None}, "larger than available brokers"),
    (0, {1: None}, "larger than 0"),
    (2, {1: "a", 2: None}, "rack information"),
])
def test_assignment_errors(rf: int, racks: dict[int, str | None], message: str) -> None:
    with pytest.raises(AssignmentError, match=message):
        assign_replicas(1, rf, racks)
