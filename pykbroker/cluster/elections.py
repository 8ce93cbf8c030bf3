"""Leader elections the controller makes besides broker loss: preferred-leader elections (automatic,
``auto.leader.rebalance.enable``, and asked for by ElectLeaders) and unclean elections.

Pure functions of a ZooKeeper snapshot, like cluster/controller.py, with Kafka's rules
(KafkaController.checkAndTriggerAutoLeaderRebalance / processReplicaLeaderElection, Election.scala,
PartitionLeaderElectionAlgorithms):

- preferred: the first assigned replica leads if it is live and in the ISR (ISR unchanged, next
  leader epoch); it already leading is ELECTION_NOT_NEEDED, it not being eligible is
  PREFERRED_LEADER_NOT_AVAILABLE;
- unclean: only for a partition without a live leader (else ELECTION_NOT_NEEDED): the first live
  ISR member, else the first live replica with ISR = [it] (data above its log end is lost, as
  Kafka accepts); no live replica is ELIGIBLE_LEADERS_NOT_AVAILABLE;
- automatic rebalance: per preferred broker, the share of its partitions led by another broker;
  above ``leader.imbalance.per.broker.percentage`` every such partition whose preferred replica
  can lead is moved back to it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from ..protocol.errors import ErrorCode
from .model import NO_LEADER, ClusterSnapshot, PartitionState

#: ElectLeaders' election_type values (org.apache.kafka.common.ElectionType).
PREFERRED, UNCLEAN = 0, 1
STRATEGY = {PREFERRED: "PreferredReplicaPartitionLeaderElectionStrategy",
            UNCLEAN: "OfflinePartitionLeaderElectionStrategy(true)"}

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Election:
    """One partition's answer: the state to write (conditional on its zk_version), or an error."""

    state: PartitionState | None
    error: int = ErrorCode.NONE
    message: str | None = None


def offline_leader(replicas: Sequence[int], isr: Sequence[int], live: set[int],
                   unclean: bool) -> tuple[int, tuple[int, ...]] | None:
    """Kafka's offlinePartitionLeaderElection: (leader, new ISR), or None when nobody may lead."""
    live_isr = tuple(r for r in isr if r in live)
    for r in replicas:
        if r in live_isr:
            return r, live_isr
    if unclean:
        for r in replicas:
            if r in live:
                return r, (r,)
    return None


def preferred_eligible(replicas: Sequence[int], state: PartitionState, live: set[int]) -> bool:
    return bool(replicas) and replicas[0] in live and replicas[0] in state.isr


def elect(snap: ClusterSnapshot, partitions: Iterable[TopicPartition], election_type: int,
          controller_epoch: int) -> dict[TopicPartition, Election]:
    """ElectLeaders at the controller: per partition asked for, the new state or Kafka's error."""
    live = set(snap.brokers)
    out: dict[TopicPartition, Election] = {}
    for tp in partitions:
        assignment = snap.topics.get(tp[0])
        replicas = assignment.replicas.get(tp[1]) if assignment is not None else None
        state = snap.states.get(tp)
        if not replicas or state is None:
            out[tp] = Election(None, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist.")
            continue
        if tp[0] in snap.deleting:
            out[tp] = Election(None, ErrorCode.INVALID_TOPIC_EXCEPTION, "The topic is being deleted")
            continue
        if election_type == PREFERRED:
            needed = state.leader != replicas[0]
            chosen = (replicas[0], state.isr) if preferred_eligible(replicas, state, live) else None
        else:
            needed = state.leader == NO_LEADER or state.leader not in live
            chosen = offline_leader(replicas, state.isr, live, unclean=True)
        if not needed:
            out[tp] = Election(None, ErrorCode.ELECTION_NOT_NEEDED)
        elif chosen is None:
            code = ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE if election_type == PREFERRED \
                else ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
            out[tp] = Election(None, code, f"Failed to elect leader for partition {tp[0]}-{tp[1]} under "
                                           f"strategy {STRATEGY[election_type]}")
        else:
            out[tp] = Election(PartitionState(chosen[0], state.leader_epoch + 1, chosen[1], controller_epoch,
                                              state.zk_version))
    return out


def rebalance(snap: ClusterSnapshot, controller_epoch: int, percentage: int,
              skip: Callable[[str], bool] = lambda topic: False) -> dict[TopicPartition, PartitionState]:
    """auto.leader.rebalance.enable: the preferred-leader elections one imbalance check triggers."""
    by_preferred: dict[int, list[TopicPartition]] = defaultdict(list)
    for name, assignment in snap.topics.items():
        if skip(name):
            continue
        for index, replicas in assignment.replicas.items():
            if replicas:
                by_preferred[replicas[0]].append((name, index))
    moves: dict[TopicPartition, PartitionState] = {}
    for broker, tps in sorted(by_preferred.items()):
        elsewhere = [tp for tp in tps if tp in snap.states and snap.states[tp].leader != broker]
        if len(elsewhere) / len(tps) <= percentage / 100:
            continue
        for tp, e in elect(snap, sorted(elsewhere), PREFERRED, controller_epoch).items():
            if e.state is not None:
                moves[tp] = e.state
    return moves
