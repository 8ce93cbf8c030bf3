"""The consumer group protocol of KIP-848: server-side assignment driven by heartbeats.

Each heartbeat carries the member's epoch (and, when changed, its subscription and owned
partitions). A subscription change or membership change bumps the group epoch; the target
assignment is then recomputed by the group's assignor, and each member is moved towards its
target on its own heartbeats: first it is told to give up partitions it must lose (it keeps its
epoch until it reports them gone), then it receives the new epoch and the partitions that no
other member still owns.
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple

import re2
import trio

from ..protocol.errors import ErrorCode
from .assignors import ASSIGNORS, Assignment

log = logging.getLogger("pykbroker.group")

DEFAULT_ASSIGNOR = "uniform"
LEAVE_EPOCH, STATIC_LEAVE_EPOCH = -1, -2

#: topic name -> (topic id, partition count), or None when the topic does not exist
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a client's bad expression is answered, not logged by RE2 itself

TopicLookup = Callable[[str], "tuple[uuid.UUID, int] | None"]
#: topic id -> sorted partitions
Partitions = dict[uuid.UUID, list[int]]


@dataclass(frozen=True)
class ConsumerGroupLimits:
    """group.consumer.* settings, checked against each other at start as Kafka's GroupCoordinatorConfig does."""

    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 5000
    min_session_timeout_ms: int = 45000
    max_session_timeout_ms: int = 60000
    min_heartbeat_interval_ms: int = 5000
    max_heartbeat_interval_ms: int = 15000
    max_size: int = 2**31 - 1

    def __post_init__(self) -> None:
        def require(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"invalid consumer group settings: {what}")
        require(self.min_session_timeout_ms <= self.session_timeout_ms <= self.max_session_timeout_ms,
                f"group.consumer.session.timeout.ms={self.session_timeout_ms} must be within "
                f"group.consumer.min.session.timeout.ms={self.min_session_timeout_ms} and "
                f"group.consumer.max.session.timeout.ms={self.max_session_timeout_ms}")
        require(self.min_heartbeat_interval_ms <= self.heartbeat_interval_ms <= self.max_heartbeat_interval_ms,
                f"group.consumer.heartbeat.interval.ms={self.heartbeat_interval_ms} must be within "
                f"group.consumer.min.heartbeat.interval.ms={self.min_heartbeat_interval_ms} and "
                f"group.consumer.max.heartbeat.interval.ms={self.max_heartbeat_interval_ms}")
        require(self.heartbeat_interval_ms < self.session_timeout_ms,
                "group.consumer.heartbeat.interval.ms must be below group.consumer.session.timeout.ms")

    @classmethod
    def from_config(cls, c: Any) -> "ConsumerGroupLimits":
        return cls(c.group_consumer_session_timeout_ms, c.group_consumer_heartbeat_interval_ms,
                   c.group_consumer_min_session_timeout_ms, c.group_consumer_max_session_timeout_ms,
                   c.group_consumer_min_heartbeat_interval_ms, c.group_consumer_max_heartbeat_interval_ms,
                   c.group_consumer_max_size)


class ConsumerHeartbeat(NamedTuple):
    """One ConsumerGroupHeartbeat: None fields are "unchanged since the last heartbeat"."""

    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: list[str] | None = None
    server_assignor: str | None = None
    owned: Partitions | None = None
    #: v1 (KIP-848 in Kafka 4): topics matched by the broker with this RE2/J regular expression.
    subscribed_topic_regex: str | None = None


class ConsumerHeartbeatResult(NamedTuple):
    error: ErrorCode
    message: str | None = None
    member_id: str | None = None
    member_epoch: int = -1
    heartbeat_interval_ms: int = 0
    assignment: Partitions | None = None  # None: unchanged


class DescribedPartitions(NamedTuple):
    topic_id: uuid.UUID
    topic_name: str
    partitions: list[int]


class ConsumerMemberDescription(NamedTuple):
    member_id: str
    instance_id: str | None
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    subscribed: list[str]
    assignment: list[DescribedPartitions]
    target: list[DescribedPartitions]
    regex: str | None = None


class ConsumerGroupDescription(NamedTuple):
    error: ErrorCode
    message: str | None
    group_id: str
    state: str
    group_epoch: int = -1
    assignment_epoch: int = -1
    assignor: str = ""
    members: tuple[ConsumerMemberDescription, ...] = ()


@dataclass
class ConsumerMember:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    subscribed: list[str] = field(default_factory=list)
    regex: str | None = None
    member_epoch: int = 0
    previous_epoch: int = -1
    assigned: Assignment = field(default_factory=dict)
    revoking: Assignment = field(default_factory=dict)
    last_sent: Assignment | None = None
    last_heartbeat: float = 0.0


@dataclass
class ConsumerGroup:
    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    assignor: str = DEFAULT_ASSIGNOR
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    topology: tuple[Any, ...] = ()

    @property
    def state(self) -> str:
        if not self.members:
            return "Empty"
        if self.group_epoch > self.assignment_epoch:
            return "Assigning"
        if any(m.member_epoch != self.assignment_epoch or m.revoking for m in self.members.values()):
            return "Reconciling"
        return "Stable"


def _copy(a: Assignment) -> Assignment:
    return {t: set(p) for t, p in a.items() if p}


def _minus(a: Assignment, b: Assignment) -> Assignment:
    return {t: p - b.get(t, set()) for t, p in a.items() if p - b.get(t, set())}


class ConsumerGroupCoordinator:
    def __init__(self, topics: TopicLookup, limits: ConsumerGroupLimits = ConsumerGroupLimits(),
                 availability: Callable[[str], ErrorCode] = lambda group_id: ErrorCode.NONE,
                 list_topics: Callable[[], Iterable[str]] = tuple) -> None:
        self._topics = topics
        self._list_topics = list_topics  # the topics a regex subscription can match (no internal ones)
        self._patterns: dict[str, Any] = {}
        self.limits = limits
        self.session_timeout_ms = limits.session_timeout_ms
        self.heartbeat_interval_ms = limits.heartbeat_interval_ms
        self._availability = availability  # NOT_COORDINATOR / LOAD_IN_PROGRESS for groups not served here
        self.groups: dict[str, ConsumerGroup] = {}

    def unload(self, on_partition: Callable[[str], bool]) -> None:
        """Forget the groups of an unloaded __consumer_offsets partition (their members rejoin elsewhere)."""
        for group_id in [g for g in self.groups if on_partition(g)]:
            del self.groups[group_id]

    def heartbeat(self, req: ConsumerHeartbeat, client_id: str, client_host: str) -> ConsumerHeartbeatResult:
        group_id, member_id, epoch = req.group_id, req.member_id, req.member_epoch
        if not group_id:
            return _error(ErrorCode.INVALID_GROUP_ID, "group id must not be empty")
        code = self._availability(group_id)
        if code:
            return _error(code, f"this broker does not serve group {group_id} now")
        group = self.groups.get(group_id)
        now = trio.current_time()
        changed = False
        if epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
            if group is not None and member_id in group.members:
                self._remove(group, group.members[member_id], "left the group")
            return ConsumerHeartbeatResult(ErrorCode.NONE, None, member_id, epoch, self.heartbeat_interval_ms)
        if req.subscribed_topic_regex:
            try:
                self._pattern(req.subscribed_topic_regex)
            except re2.error as e:
                why = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
                return _error(ErrorCode.INVALID_REGULAR_EXPRESSION,
                              f"SubscribedTopicRegex {req.subscribed_topic_regex!r} is not a valid regular expression: {why}")
        if epoch == 0:
            if req.subscribed_topic_names is None and req.subscribed_topic_regex is None:
                return _error(ErrorCode.INVALID_REQUEST,
                              "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
            if group is None:
                group = self.groups[group_id] = ConsumerGroup(group_id)
            if req.server_assignor is not None:
                if req.server_assignor not in ASSIGNORS:
                    return _error(ErrorCode.UNSUPPORTED_ASSIGNOR, f"assignor {req.server_assignor!r} is not one of "
                                  f"{', '.join(ASSIGNORS)}")
                group.assignor = req.server_assignor
            member = group.members.get(member_id) if member_id else None
            if member is None:
                if req.instance_id is not None:
                    old = next((m for m in group.members.values() if m.instance_id == req.instance_id), None)
                    if old is not None:  # a static member is back: it takes over the old member's partitions
                        del group.members[old.member_id]
                        member_id = member_id or _new_member_id()
                        old.member_id = member_id
                        old.member_epoch, old.last_sent = 0, None
                        group.members[member_id] = old
                        member = old
                if member is None and len(group.members) >= self.limits.max_size:
                    return _error(ErrorCode.GROUP_MAX_SIZE_REACHED,
                                  f"group {group_id} has reached group.consumer.max.size={self.limits.max_size}")
                if member is None:
                    member_id = member_id or _new_member_id()
                    member = group.members[member_id] = ConsumerMember(
                        member_id, req.instance_id, req.rack_id, client_id, client_host, req.rebalance_timeout_ms)
                    changed = True
                    log.info("group %s: member %s joined", group_id, member_id)
            member.last_sent = None  # a (re)joining member always gets its assignment
        else:
            if group is None or member_id not in group.members:
                return _error(ErrorCode.UNKNOWN_MEMBER_ID, f"member {member_id} is not in group {group_id}")
            member = group.members[member_id]
            if epoch not in (member.member_epoch, member.previous_epoch):
                return _error(ErrorCode.FENCED_MEMBER_EPOCH,
                              f"epoch {epoch} is not the member's current epoch {member.member_epoch}")
        member.last_heartbeat = now
        if req.rebalance_timeout_ms is not None and req.rebalance_timeout_ms > 0:
            member.rebalance_timeout_ms = req.rebalance_timeout_ms
        if req.subscribed_topic_names is not None and sorted(req.subscribed_topic_names) != sorted(member.subscribed):
            member.subscribed = list(req.subscribed_topic_names)
            changed = True
        if req.subscribed_topic_regex is not None and (req.subscribed_topic_regex or None) != member.regex:
            member.regex = req.subscribed_topic_regex or None  # "" clears it, as Kafka
            changed = True
        if changed:  # one heartbeat that changes the group bumps its epoch once, as Kafka's
            group.group_epoch += 1
        self._refresh_target(group)
        owned = None
        if req.owned is not None:
            owned = {}
            for topic_id, partitions in req.owned.items():
                name = self._name_of(topic_id)
                if name is not None:
                    owned[name] = set(partitions)
        self._reconcile(group, member, owned)
        assignment: Partitions | None = None
        current = _copy(member.assigned)
        if member.last_sent != current:
            member.last_sent = current
            assignment = {}
            for t, p in sorted(current.items()):
                topic_id = self._id_of(t)
                if topic_id is not None:
                    assignment[topic_id] = sorted(p)
        return ConsumerHeartbeatResult(ErrorCode.NONE, None, member.member_id, member.member_epoch,
                                       self.heartbeat_interval_ms, assignment)

    # ------------------------------------------------------------------ assignment

    def _pattern(self, regex: str) -> Any:
        """RE2 (the syntax of Kafka's RE2/J), compiled once per expression."""
        pattern = self._patterns.get(regex)
        if pattern is None:
            pattern = self._patterns[regex] = re2.compile(regex, _RE2_OPTIONS)
        return pattern

    def _subscription(self, member: ConsumerMember, topics: list[str]) -> set[str]:
        """Named topics plus those the member's regex matches in full (Kafka resolves it broker-side)."""
        out = set(member.subscribed)
        if member.regex:
            pattern = self._pattern(member.regex)
            out.update(t for t in topics if pattern.fullmatch(t))
        return out

    def _refresh_target(self, group: ConsumerGroup) -> None:
        topics = sorted(self._list_topics()) if any(m.regex for m in group.members.values()) else []
        subscriptions = {m.member_id: self._subscription(m, topics) for m in group.members.values()}
        subscribed = sorted(set().union(*subscriptions.values()))
        topology = tuple((t, self._topics(t)) for t in subscribed)
        if topology != group.topology:  # a subscribed topic appeared, vanished or grew
            group.topology = topology
            group.group_epoch += 1
        if group.group_epoch <= group.assignment_epoch:
            return
        partitions = {t: info[1] for t, info in topology if info is not None}
        group.target = ASSIGNORS[group.assignor](subscriptions, partitions, group.target)
        group.assignment_epoch = group.group_epoch
        log.info("group %s: target assignment at epoch %d", group.group_id, group.assignment_epoch)

    def _reconcile(self, group: ConsumerGroup, member: ConsumerMember, owned: Assignment | None) -> None:
        target = group.target.get(member.member_id, {})
        if member.revoking and owned is not None:
            still = {t: p & owned.get(t, set()) for t, p in member.revoking.items()}
            if not any(still.values()):
                member.revoking = {}
        if member.revoking:
            return  # waits for the member to report the revoked partitions gone
        to_revoke = _minus(member.assigned, target)
        if to_revoke:
            member.revoking = to_revoke
            member.assigned = _minus(member.assigned, to_revoke)
            return
        if member.member_epoch != group.assignment_epoch:
            member.previous_epoch, member.member_epoch = member.member_epoch, group.assignment_epoch
        # Add what the target gives, except partitions another member has not released yet.
        busy: dict[str, set[int]] = {}
        for other in group.members.values():
            if other is not member:
                for t, p in list(other.assigned.items()) + list(other.revoking.items()):
                    busy.setdefault(t, set()).update(p)
        for t, parts in _minus(target, member.assigned).items():
            free = parts - busy.get(t, set())
            if free:
                member.assigned.setdefault(t, set()).update(free)

    def _remove(self, group: ConsumerGroup, member: ConsumerMember, why: str) -> None:
        del group.members[member.member_id]
        group.target.pop(member.member_id, None)
        group.group_epoch += 1
        log.info("group %s: member %s %s (epoch %d)", group.group_id, member.member_id, why, group.group_epoch)

    def tick(self) -> None:
        now = trio.current_time()
        for group in self.groups.values():
            for m in list(group.members.values()):
                if now > m.last_heartbeat + self.session_timeout_ms / 1000:
                    self._remove(group, m, "session timed out")

    # ------------------------------------------------------------------ lookups

    def _id_of(self, topic: str) -> uuid.UUID | None:
        info = self._topics(topic)
        return info[0] if info else None

    def _name_of(self, topic_id: uuid.UUID) -> str | None:
        for group in self.groups.values():
            for t, info in group.topology:
                if info is not None and info[0] == topic_id:
                    return t
        return None

    def commit_check(self, group_id: str, member_id: str, epoch: int) -> ErrorCode | None:
        """None when the group is not a consumer-protocol group (the classic rules apply)."""
        group = self.groups.get(group_id)
        if group is None:
            return None
        if epoch < 0 and not member_id:
            return ErrorCode.NONE if not group.members else ErrorCode.UNKNOWN_MEMBER_ID
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def describe(self, group_id: str) -> ConsumerGroupDescription:
        code = self._availability(group_id)
        if code:
            return ConsumerGroupDescription(code, f"this broker does not serve group {group_id} now", group_id, "Dead")
        group = self.groups.get(group_id)
        if group is None:
            return ConsumerGroupDescription(ErrorCode.GROUP_ID_NOT_FOUND, f"group {group_id} not found",
                                            group_id, "Dead")

        def described(a: Assignment) -> list[DescribedPartitions]:
            out = []
            for t, p in sorted(a.items()):
                topic_id = self._id_of(t)
                if topic_id is not None:
                    out.append(DescribedPartitions(topic_id, t, sorted(p)))
            return out
        members = tuple(ConsumerMemberDescription(
            m.member_id, m.instance_id, m.rack_id, m.member_epoch, m.client_id, m.client_host, m.subscribed,
            described(m.assigned), described(group.target.get(m.member_id, {})), m.regex)
            for m in group.members.values())
        return ConsumerGroupDescription(ErrorCode.NONE, None, group_id, group.state, group.group_epoch,
                                        group.assignment_epoch, group.assignor, members)


def _new_member_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _error(code: ErrorCode, message: str) -> ConsumerHeartbeatResult:
    return ConsumerHeartbeatResult(code, message)
