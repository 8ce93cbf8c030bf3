"""The controller's decisions: from one ZooKeeper snapshot, the partition states to write.

A pure function of the snapshot (so a new controller needs no state of its own, and the rules are
unit-tested without ZooKeeper), applied by the cluster node with conditional writes on each
state's znode version: if a leader changed its ISR meanwhile, the write fails, the snapshot is
read again and the decision taken again. Kafka's rules (KafkaController, PartitionStateMachine):

- a new partition: leader = the first live replica in assignment order, ISR = the live replicas;
  with no live replica the partition waits (no state) until one registers;
- leader lost (its /brokers/ids node gone): the first replica, in assignment order, that is live
  and in the ISR leads at leader epoch + 1 with ISR = the live ISR; none left: leader -1 with the
  ISR kept as it was (``unclean.leader.election.enable=false``, the default), and the first ISR
  member to come back leads; with ``unclean.leader.election.enable=true`` (topic config, else the
  broker's) the first live replica leads instead, with ISR = [it] (cluster/elections.py);
- a follower in the ISR lost: it leaves the ISR (no new epoch: the leader stays);
- a topic queued for deletion gets no elections; once every replica has deleted its data
  (TopicDeletionManager waits for the same, so an offline replica holds the deletion up) its
  nodes are removed (``finished_deletions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from .elections import offline_leader
from .model import NO_LEADER, ClusterSnapshot, PartitionState


@dataclass(frozen=True)
class StateWrite:
    topic: str
    partition: int
    state: PartitionState
    #: True: create the state node; False: conditional update on ``state.zk_version``.
    create: bool


def plan(snap: ClusterSnapshot, controller_epoch: int,
         unclean: Callable[[str], bool] = lambda topic: False) -> list[StateWrite]:
    """Every partition state this controller must write now (empty when all is in order);
    ``unclean(topic)`` is that topic's ``unclean.leader.election.enable``."""
    live = set(snap.brokers)
    writes = []
    for name, assignment in sorted(snap.topics.items()):
        if name in snap.deleting:
            continue
        for partition, replicas in sorted(assignment.replicas.items()):
            current = snap.states.get((name, partition))
            if current is None:
                state = initial_state(replicas, live, controller_epoch)
                if state is not None:
                    writes.append(StateWrite(name, partition, state, create=True))
                continue
            new = next_state(current, replicas, live, controller_epoch, unclean(name))
            if new is not None:
                writes.append(StateWrite(name, partition, new, create=False))
    return writes


def initial_state(replicas: Iterable[int], live: set[int], controller_epoch: int) -> PartitionState | None:
    alive = tuple(r for r in replicas if r in live)
    if not alive:
        return None
    return PartitionState(alive[0], 0, alive, controller_epoch)


def next_state(current: PartitionState, replicas: Iterable[int], live: set[int],
               controller_epoch: int, unclean: bool = False) -> PartitionState | None:
    """The state after broker changes, or None when ``current`` still holds."""
    live_isr = tuple(r for r in current.isr if r in live)
    if current.leader in live:
        if live_isr == current.isr:
            return None
        return PartitionState(current.leader, current.leader_epoch, live_isr, controller_epoch, current.zk_version)
    chosen = offline_leader(tuple(replicas), current.isr, live, unclean)
    if chosen is not None:
        return PartitionState(chosen[0], current.leader_epoch + 1, chosen[1], controller_epoch, current.zk_version)
    if current.leader == NO_LEADER:
        return None  # offline until an ISR member returns
    return PartitionState(NO_LEADER, current.leader_epoch + 1, current.isr, controller_epoch, current.zk_version)


def finished_deletions(snap: ClusterSnapshot) -> list[tuple[str, bool]]:
    """(topic, its assignment still exists) for each queued deletion the controller can complete."""
    out = []
    for name, acked in sorted(snap.deleting.items()):
        assignment = snap.topics.get(name)
        if assignment is None or {r for rs in assignment.replicas.values() for r in rs} <= acked:
            out.append((name, assignment is not None))
    return out
