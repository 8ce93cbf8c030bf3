"""A classic consumer group's members and state (Kafka's GroupMetadata), without I/O.

    Empty --join--> PreparingRebalance --all joined--> CompletingRebalance --leader syncs--> Stable
      ^                    ^  |                               |                               |
      +---last member out--+  +--------any change (join of a new member, leave, expiry)-------+

Members that got their JoinGroup answer but have not sent SyncGroup are "pending sync"; if any still
is at the rebalance timeout, they are removed and the group rebalances (Kafka's pending-sync timer),
so a leader that never syncs cannot stall its group.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import trio

from .results import JoinResult, SyncResult


class GroupState(str, enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


T = TypeVar("T")


class Future(Generic[T]):
    """One parked request's answer (a JoinGroup or SyncGroup waiting for the rebalance).

    A member that sends the same request again while parked shares the future: both get the answer."""

    __slots__ = ("_event", "value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self.value: T | None = None

    def set(self, value: T) -> None:
        if not self._event.is_set():
            self.value = value
            self._event.set()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout_s: float, on_timeout: T) -> T:
        """The answer, or `on_timeout` if none came in time (a safety net: the timers answer first)."""
        with trio.move_on_after(timeout_s):
            await self._event.wait()
        if not self._event.is_set():
            self.set(on_timeout)
        assert self.value is not None
        return self.value


@dataclass
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    last_heartbeat: float
    assignment: bytes = b""
    join_future: "Future[JoinResult] | None" = None
    sync_future: "Future[SyncResult] | None" = None

    def metadata(self, protocol: str) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    @property
    def awaiting_join(self) -> bool:
        return self.join_future is not None and not self.join_future.done

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_future is not None and not self.sync_future.done


@dataclass
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)  # group.instance.id -> member id
    pending_members: dict[str, float] = field(default_factory=dict)  # MEMBER_ID_REQUIRED: id -> deadline
    rebalance_deadline: float = 0.0
    initial_delay_until: float = 0.0
    pending_sync: set[str] = field(default_factory=set)  # joined this generation, no SyncGroup yet
    sync_deadline: float = 0.0

    @property
    def rebalance_timeout_s(self) -> float:
        """The group's rebalance timeout: the largest of its members' (Kafka's rule)."""
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0) / 1000

    def supports(self, protocol_type: str, protocols: list[tuple[str, bytes]], member_id: str = "") -> bool:
        """A joining member must speak the group's protocol type and one protocol every other member has."""
        if not protocols or not protocol_type:
            return False
        others = [m for m in self.members.values() if m.member_id != member_id]
        if not others:
            return True
        if protocol_type != self.protocol_type:
            return False
        return bool(self.candidate_protocols(others) & {name for name, _ in protocols})

    def candidate_protocols(self, members: list[Member] | None = None) -> set[str]:
        sets = [{name for name, _ in m.protocols} for m in (members if members is not None else self.members.values())]
        return set.intersection(*sets) if sets else set()

    def select_protocol(self) -> str:
        """Each member votes for its most preferred protocol that all members support (Kafka's rule)."""
        candidates = self.candidate_protocols()
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = next(name for name, _ in m.protocols if name in candidates)
            votes[choice] = votes.get(choice, 0) + 1
        return max(votes, key=lambda name: votes[name])

    def all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())
