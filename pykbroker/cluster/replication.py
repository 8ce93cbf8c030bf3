"""The replicated part of a partition (cluster mode only): role, high watermark, followers' progress.

A single-node partition has none of this (its high watermark is its log end offset). In a cluster:
- the leader learns each follower's log end offset from the offset its replica fetches ask for,
  and moves the high watermark to the minimum over the ISR (never backwards);
- a follower counts as caught up at the time of a fetch that reached the leader's log end, or
  the previous fetch's log end (Kafka's Replica.updateFetchState); a follower of the ISR not
  caught up for ``replica.lag.time.max.ms`` is dropped from it, one out of it that reaches the
  high watermark (and the current epoch's start) is taken back — both by a conditional write of
  the partition state in ZooKeeper, applied here only once the write succeeded;
- a follower's high watermark is the leader's, capped at its own log end offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNKNOWN = -1


@dataclass
class FollowerState:
    log_end_offset: int = UNKNOWN
    last_caught_up_ms: int = 0
    last_fetch_leader_leo: int = UNKNOWN
    last_fetch_ms: int = 0


@dataclass
class Replication:
    node_id: int
    high_watermark: int = 0
    is_leader: bool = False
    #: Version of the partition's state znode this replica acts on (the condition of its ISR writes).
    zk_version: int = -1
    followers: dict[int, FollowerState] = field(default_factory=dict)
    #: First offset of the current leader epoch on this leader (an ISR candidate must reach it).
    epoch_start_offset: int = 0

    def lead(self, replicas: tuple[int, ...], isr: tuple[int, ...], log_end_offset: int, now_ms: int) -> None:
        """Becoming leader: every follower's position is unknown until it fetches; ISR members start
        as caught up now (so they are not dropped before they had a chance to fetch)."""
        self.is_leader = True
        self.epoch_start_offset = log_end_offset
        self.followers = {r: FollowerState(last_caught_up_ms=now_ms if r in isr else 0)
                          for r in replicas if r != self.node_id}

    def follow(self) -> None:
        self.is_leader = False
        self.followers = {}

    def record_fetch(self, replica_id: int, fetch_offset: int, leader_leo: int, now_ms: int) -> FollowerState:
        state = self.followers.setdefault(replica_id, FollowerState())
        if fetch_offset >= leader_leo:
            state.last_caught_up_ms = max(state.last_caught_up_ms, now_ms)
        elif fetch_offset >= state.last_fetch_leader_leo >= 0:
            state.last_caught_up_ms = max(state.last_caught_up_ms, state.last_fetch_ms)
        state.log_end_offset = fetch_offset
        state.last_fetch_leader_leo = leader_leo
        state.last_fetch_ms = now_ms
        return state

    def isr_candidate(self, replica_id: int, isr: tuple[int, ...], fetched_since_ms: int = 0) -> bool:
        """Kafka's isFollowerInSync for expansion: out of the ISR, at or past the high watermark
        and the start of this leader's epoch, and fetching (Kafka expands only while handling a
        follower's fetch): a follower that died after its last fetch reached the high watermark must
        not be taken back, or it would be dropped again for lag and taken back, over and over."""
        state = self.followers.get(replica_id)
        return (replica_id not in isr and state is not None and state.last_fetch_ms >= fetched_since_ms
                and state.log_end_offset >= max(self.high_watermark, self.epoch_start_offset))

    def lagging(self, isr: tuple[int, ...], now_ms: int, max_lag_ms: int) -> list[int]:
        return [r for r in isr if r != self.node_id and
                now_ms - self.followers.get(r, FollowerState()).last_caught_up_ms > max_lag_ms]

    def advance(self, isr: tuple[int, ...], leader_leo: int) -> bool:
        """Leader: the high watermark to the minimum log end offset over the ISR; True if it moved."""
        if not self.is_leader:
            return False
        low = leader_leo
        for r in isr:
            if r != self.node_id:
                low = min(low, self.followers.get(r, FollowerState()).log_end_offset)
        if low > self.high_watermark:
            self.high_watermark = low
            return True
        return False
