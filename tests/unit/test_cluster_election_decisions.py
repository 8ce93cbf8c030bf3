"""Preferred-leader, unclean and ElectLeaders decisions (cluster/elections.py, cluster/controller.py):
pure functions of a ZooKeeper snapshot, checked without ZooKeeper."""

from __future__ import annotations

import uuid

from pykbroker.cluster.controller import plan
from pykbroker.cluster.elections import PREFERRED, UNCLEAN, elect, rebalance
from pykbroker.cluster.model import BrokerInfo, ClusterSnapshot, PartitionState, TopicAssignment
from pykbroker.protocol.errors import ErrorCode


def cluster(live: list[int], partitions: dict[int, tuple[tuple[int, ...], PartitionState | None]]) -> ClusterSnapshot:
    snap = ClusterSnapshot(brokers={i: BrokerInfo(i, "127.0.0.1", 9000 + i) for i in live})
    snap.topics["t"] = TopicAssignment("t", uuid.uuid4(), {p: r for p, (r, _) in partitions.items()})
    snap.states.update({("t", p): s for p, (_, s) in partitions.items() if s is not None})
    return snap


def test_unclean_disabled_keeps_a_partition_offline_when_no_isr_member_is_live() -> None:
    snap = cluster([2, 3], {0: ((1, 2, 3), PartitionState(-1, 6, (1,), 1, 8))})
    assert plan(snap, 2) == []
    assert plan(snap, 2, unclean=lambda topic: topic == "other") == []


def test_unclean_enabled_elects_the_first_live_replica_with_itself_as_isr() -> None:
    snap = cluster([2, 3], {0: ((1, 3, 2), PartitionState(1, 5, (1,), 1, 7))})
    [w] = plan(snap, 2, unclean=lambda topic: topic == "t")
    assert (w.state.leader, w.state.leader_epoch, w.state.isr, w.state.zk_version) == (3, 6, (3,), 7)


def test_unclean_prefers_a_live_isr_member_over_an_earlier_out_of_sync_replica() -> None:
    snap = cluster([2, 3], {0: ((1, 2, 3), PartitionState(1, 5, (1, 3), 1, 7))})
    [w] = plan(snap, 2, unclean=lambda topic: True)
    assert (w.state.leader, w.state.isr) == (3, (3,))


def test_preferred_election_moves_leadership_back_keeping_the_isr() -> None:
    snap = cluster([1, 2, 3], {0: ((1, 2, 3), PartitionState(2, 4, (2, 3, 1), 1, 9))})
    e = elect(snap, [("t", 0)], PREFERRED, 3)[("t", 0)]
    assert e.error == ErrorCode.NONE
    assert e.state == PartitionState(1, 5, (2, 3, 1), 3, 9)


def test_preferred_election_not_needed_not_available_and_unknown() -> None:
    snap = cluster([2, 3], {0: ((1, 2, 3), PartitionState(1, 4, (1, 2, 3), 1, 9)),
                            1: ((1, 2, 3), PartitionState(2, 4, (2, 3, 1), 1, 9)),
                            2: ((2, 3, 1), PartitionState(3, 4, (3,), 1, 9))})
    out = elect(snap, [("t", 0), ("t", 1), ("t", 2), ("t", 7), ("nope", 0)], PREFERRED, 3)
    assert out[("t", 0)].error == ErrorCode.ELECTION_NOT_NEEDED  # its leader is the preferred one
    assert out[("t", 1)].error == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE  # 1 is not live
    assert out[("t", 2)].error == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE  # 2 is live but out of the ISR
    assert "PreferredReplicaPartitionLeaderElectionStrategy" in (out[("t", 2)].message or "")
    assert out[("t", 7)].error == out[("nope", 0)].error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert all(e.state is None for e in out.values())


def test_unclean_election_api() -> None:
    snap = cluster([2, 3], {0: ((1, 2, 3), PartitionState(2, 4, (2, 3), 1, 9)),
                            1: ((1, 3, 2), PartitionState(-1, 4, (1,), 1, 9)),
                            2: ((1, 4), PartitionState(-1, 4, (1,), 1, 9))})
    out = elect(snap, [("t", 0), ("t", 1), ("t", 2)], UNCLEAN, 3)
    assert out[("t", 0)].error == ErrorCode.ELECTION_NOT_NEEDED  # a live leader
    assert out[("t", 1)].state == PartitionState(3, 5, (3,), 3, 9)  # data loss accepted, as Kafka
    assert out[("t", 2)].error == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE


def test_rebalance_only_above_the_imbalance_threshold() -> None:
    parts = {p: ((1, 2, 3), PartitionState(1, 1, (1, 2, 3), 1, 1)) for p in range(10)}
    parts[0] = ((1, 2, 3), PartitionState(2, 1, (1, 2, 3), 1, 1))
    # 1 of 10 of broker 1's partitions led elsewhere: 10% is not above 10%
    assert rebalance(cluster([1, 2, 3], parts), 2, 10) == {}
    parts[1] = ((1, 2, 3), PartitionState(3, 1, (2, 3), 1, 1))  # preferred not in the ISR: not moved
    moves = rebalance(cluster([1, 2, 3], parts), 2, 10)
    assert moves == {("t", 0): PartitionState(1, 2, (1, 2, 3), 2, 1)}
    assert rebalance(cluster([1, 2, 3], parts), 2, 20) == {}
    assert rebalance(cluster([2, 3], parts), 2, 10) == {}  # preferred not live


def test_a_topic_queued_for_deletion_gets_no_election_and_completes_once_every_replica_deleted() -> None:
    from pykbroker.cluster.controller import finished_deletions
    snap = cluster([2, 3], {0: ((1, 2, 3), PartitionState(1, 5, (1, 2, 3), 1, 7))})
    snap.deleting["t"] = {2, 3}
    assert plan(snap, 2) == []  # leader 1 is gone, but the topic is being deleted
    assert elect(snap, [("t", 0)], UNCLEAN, 2)[("t", 0)].error == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert finished_deletions(snap) == []  # replica 1 (offline) has not deleted its data yet
    snap.deleting["t"].add(1)
    assert finished_deletions(snap) == [("t", True)]
    del snap.topics["t"]
    assert finished_deletions(snap) == [("t", False)]  # a marker left by a controller that died mid-way


def test_rack_aware_selector_picks_the_most_caught_up_in_sync_replica_of_the_consumers_rack() -> None:
    from types import SimpleNamespace

    from pykbroker.cluster.replica_selector import preferred_read_replica
    from pykbroker.cluster.replication import FollowerState, Replication
    r = Replication(1)
    r.is_leader = True
    r.followers = {2: FollowerState(log_end_offset=10), 3: FollowerState(log_end_offset=12),
                   4: FollowerState(log_end_offset=50)}
    p = SimpleNamespace(replication=r, node_id=1, isr=[1, 2, 3])
    racks = {1: "a", 2: "b", 3: "b", 4: "b", 5: "c"}
    assert preferred_read_replica(p, "b", 5, racks) == 3  # 4 is further ahead but out of the ISR
    assert preferred_read_replica(p, "b", 11, racks) == 3
    assert preferred_read_replica(p, "b", 13, racks) == -1  # nobody in rack b has the offset: the leader
    assert preferred_read_replica(p, "a", 5, racks) == -1  # the leader is in the consumer's rack
    assert preferred_read_replica(p, "c", 5, racks) == -1 and preferred_read_replica(p, "", 5, racks) == -1
    r.is_leader = False
    assert preferred_read_replica(p, "b", 5, racks) == -1  # only a leader redirects
