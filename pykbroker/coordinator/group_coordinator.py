"""The classic group coordinator: JoinGroup/SyncGroup/Heartbeat/LeaveGroup, offsets, admin.

Follows Kafka's GroupCoordinator: the group state machine of group.py, JoinGroup and SyncGroup
requests parked until the rebalance completes, MEMBER_ID_REQUIRED on a first join (v4+, KIP-394),
static membership (KIP-345), session and rebalance timeouts checked by `tick`. Committed offsets
go through the OffsetStore as records of __consumer_offsets, appended by the `append` callback
before they are applied, so they survive restarts.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Callable

import trio

from ..protocol.errors import ErrorCode
from .group import Future, Group, GroupState, Member
from .offsets import OffsetStore
from .offsets_schema import CommittedOffset

log = logging.getLogger("pykbroker.group")

MIN_SESSION_TIMEOUT_MS = 6000  # Kafka's group.min.session.timeout.ms
MAX_SESSION_TIMEOUT_MS = 1800000  # Kafka's group.max.session.timeout.ms
NO_GENERATION = -1


def _join_error(code: ErrorCode, member_id: str = "") -> dict[str, Any]:
    return {"error_code": code, "generation_id": NO_GENERATION, "protocol_type": None, "protocol_name": None,
            "leader": "", "skip_assignment": False, "member_id": member_id, "members": []}


class GroupCoordinator:
    def __init__(self, append: Callable[[str, bytes], None], initial_rebalance_delay_ms: int,
                 offsets_retention_ms: int) -> None:
        self._append = append
        self.initial_rebalance_delay_s = initial_rebalance_delay_ms / 1000
        self.offsets_retention_ms = offsets_retention_ms
        self.groups: dict[str, Group] = {}
        self.offsets = OffsetStore()
        self.consumer_groups: Any = None  # the KIP-848 coordinator, consulted for its own groups

    # ------------------------------------------------------------------ join

    async def join(self, group_id: str, member_id: str, instance_id: str | None, protocol_type: str,
                   protocols: list[tuple[str, bytes]], session_timeout_ms: int, rebalance_timeout_ms: int,
                   client_id: str, client_host: str, require_known_member_id: bool) -> dict[str, Any]:
        if not group_id:
            return _join_error(ErrorCode.INVALID_GROUP_ID, member_id)
        if not MIN_SESSION_TIMEOUT_MS <= session_timeout_ms <= MAX_SESSION_TIMEOUT_MS:
            return _join_error(ErrorCode.INVALID_SESSION_TIMEOUT, member_id)
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                return _join_error(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
            group = self.groups[group_id] = Group(group_id)
        if group.state == GroupState.DEAD:
            return _join_error(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id)
        existing = group.members.get(member_id)
        if not group.supports(protocol_type, protocols, member_id):
            return _join_error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)
        now = trio.current_time()
        rebalance_timeout_ms = rebalance_timeout_ms if rebalance_timeout_ms > 0 else session_timeout_ms

        def new_member(mid: str) -> Member:
            return Member(mid, instance_id, client_id, client_host, session_timeout_ms, rebalance_timeout_ms,
                          protocol_type, protocols, now)

        if not member_id:
            new_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            if instance_id is not None and instance_id in group.static_members:
                return await self._static_rejoin(group, group.static_members[instance_id], new_member(new_id))
            if instance_id is None and require_known_member_id:
                # KIP-394: hand out the id first; the member joins again with it.
                group.pending_members[new_id] = now + session_timeout_ms / 1000
                return _join_error(ErrorCode.MEMBER_ID_REQUIRED, new_id)
            return await self._add_member(group, new_member(new_id))
        if member_id in group.pending_members:
            del group.pending_members[member_id]
            return await self._add_member(group, new_member(member_id))
        if existing is None:
            if instance_id is not None and instance_id in group.static_members:
                return _join_error(ErrorCode.FENCED_INSTANCE_ID, member_id)
            return _join_error(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
        if instance_id is not None and group.static_members.get(instance_id) != member_id:
            return _join_error(ErrorCode.FENCED_INSTANCE_ID, member_id)
        return await self._update_member(group, existing, protocols, session_timeout_ms, rebalance_timeout_ms)

    async def _add_member(self, group: Group, member: Member) -> dict[str, Any]:
        if not group.members:
            group.protocol_type = member.protocol_type
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static_members[member.group_instance_id] = member.member_id
        member.join_future = Future()
        if group.state == GroupState.PREPARING_REBALANCE:
            if group.initial_delay_until:
                # Kafka's InitialDelayedJoin: each newcomer extends the wait, within the rebalance timeout.
                group.initial_delay_until = min(trio.current_time() + self.initial_rebalance_delay_s,
                                                group.rebalance_deadline)
            self._try_complete_join(group)
        else:
            self._prepare_rebalance(group, f"{member.member_id} joined")
        return await member.join_future.wait()

    async def _update_member(self, group: Group, member: Member, protocols: list[tuple[str, bytes]],
                             session_timeout_ms: int, rebalance_timeout_ms: int) -> dict[str, Any]:
        changed = protocols != member.protocols
        member.protocols = protocols
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.last_heartbeat = trio.current_time()
        if group.state == GroupState.PREPARING_REBALANCE:
            member.join_future = Future()
            self._try_complete_join(group)
            return await member.join_future.wait()
        if group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE) and not changed and (
                group.state == GroupState.COMPLETING_REBALANCE or member.member_id != group.leader_id):
            return self._join_response(group, member)  # nothing changed: the current generation stands
        member.join_future = Future()
        self._prepare_rebalance(group, f"{member.member_id} rejoined with new metadata")
        return await member.join_future.wait()

    async def _static_rejoin(self, group: Group, old_id: str, member: Member) -> dict[str, Any]:
        """A static member restarted (or a duplicate took its instance id): the new id replaces the old."""
        old = group.members.pop(old_id)
        for fut in (old.join_future, old.sync_future):
            if fut is not None:
                fut.set(_join_error(ErrorCode.FENCED_INSTANCE_ID, old_id))
        member.assignment = old.assignment
        group.members[member.member_id] = member
        group.static_members[member.group_instance_id or ""] = member.member_id
        if group.leader_id == old_id:
            group.leader_id = member.member_id
        if group.state == GroupState.STABLE and member.protocols == old.protocols:
            log.info("group %s: static member %s is back, assignment kept", group.group_id, member.group_instance_id)
            response = self._join_response(group, member)
            response["skip_assignment"] = member.member_id == group.leader_id
            return response
        member.join_future = Future()
        if group.state == GroupState.PREPARING_REBALANCE:
            self._try_complete_join(group)
        else:
            self._prepare_rebalance(group, f"static member {member.group_instance_id} rejoined")
        return await member.join_future.wait()

    def _join_response(self, group: Group, member: Member) -> dict[str, Any]:
        is_leader = member.member_id == group.leader_id
        protocol = group.protocol_name or ""
        return {"error_code": 0, "generation_id": group.generation, "protocol_type": group.protocol_type,
                "protocol_name": group.protocol_name, "leader": group.leader_id or "", "skip_assignment": False,
                "member_id": member.member_id,
                "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                             "metadata": m.metadata(protocol)} for m in group.members.values()] if is_leader else []}

    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        if group.state == GroupState.COMPLETING_REBALANCE:
            for m in group.members.values():
                if m.sync_future is not None:
                    m.sync_future.set({"error_code": ErrorCode.REBALANCE_IN_PROGRESS})
        now = trio.current_time()
        timeout_s = max((m.rebalance_timeout_ms for m in group.members.values()), default=0) / 1000
        group.rebalance_deadline = now + timeout_s
        group.initial_delay_until = 0.0
        if group.state == GroupState.EMPTY and self.initial_rebalance_delay_s > 0:
            group.initial_delay_until = min(now + self.initial_rebalance_delay_s, group.rebalance_deadline)
        group.state = GroupState.PREPARING_REBALANCE
        log.info("group %s: preparing rebalance (generation %d): %s", group.group_id, group.generation, reason)
        self._try_complete_join(group)

    def _try_complete_join(self, group: Group) -> None:
        if group.state != GroupState.PREPARING_REBALANCE:
            return
        now = trio.current_time()
        if group.initial_delay_until and now < group.initial_delay_until:
            return
        if group.all_joined() or now >= group.rebalance_deadline:
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        for m in [m for m in group.members.values() if not m.awaiting_join]:
            log.info("group %s: removing %s, which did not rejoin in time", group.group_id, m.member_id)
            self._drop(group, m)
        group.pending_members.clear()
        group.initial_delay_until = 0.0
        group.generation += 1
        if not group.members:
            group.state = GroupState.EMPTY
            group.protocol_name = group.protocol_type = group.leader_id = None
            return
        group.protocol_name = group.select_protocol()
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members))
        group.state = GroupState.COMPLETING_REBALANCE
        log.info("group %s: generation %d with %d member(s), protocol %s", group.group_id, group.generation,
                 len(group.members), group.protocol_name)
        for m in group.members.values():
            m.assignment = b""
            m.last_heartbeat = trio.current_time()
            assert m.join_future is not None
            m.join_future.set(self._join_response(group, m))

    def _drop(self, group: Group, member: Member) -> None:
        group.members.pop(member.member_id, None)
        if member.group_instance_id is not None and group.static_members.get(member.group_instance_id) == member.member_id:
            del group.static_members[member.group_instance_id]
        if group.leader_id == member.member_id:
            group.leader_id = None

    def _remove_member(self, group: Group, member: Member, reason: str) -> None:
        for fut in (member.join_future, member.sync_future):
            if fut is not None:
                fut.set(_join_error(ErrorCode.UNKNOWN_MEMBER_ID, member.member_id))
        self._drop(group, member)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        elif group.state == GroupState.PREPARING_REBALANCE:
            self._try_complete_join(group)

    # ------------------------------------------------------------------ sync, heartbeat, leave

    def _check_member(self, group: Group | None, member_id: str, instance_id: str | None,
                      generation: int) -> tuple[ErrorCode, Member | None]:
        if group is None or group.state == GroupState.DEAD:
            return ErrorCode.UNKNOWN_MEMBER_ID, None
        member = group.members.get(member_id)
        if instance_id is not None:
            owner = group.static_members.get(instance_id)
            if owner is not None and owner != member_id:
                return ErrorCode.FENCED_INSTANCE_ID, None
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID, None
        if generation != group.generation:
            return ErrorCode.ILLEGAL_GENERATION, member
        return ErrorCode.NONE, member

    async def sync(self, group_id: str, member_id: str, instance_id: str | None, generation: int,
                   protocol_type: str | None, protocol_name: str | None,
                   assignments: dict[str, bytes]) -> dict[str, Any]:
        group = self.groups.get(group_id)
        code, member = self._check_member(group, member_id, instance_id, generation)
        if code or group is None or member is None:
            return {"error_code": code}
        if (protocol_type is not None and protocol_type != group.protocol_type) or \
                (protocol_name is not None and protocol_name != group.protocol_name):
            return {"error_code": ErrorCode.INCONSISTENT_GROUP_PROTOCOL}
        if group.state == GroupState.PREPARING_REBALANCE:
            return {"error_code": ErrorCode.REBALANCE_IN_PROGRESS}
        member.last_heartbeat = trio.current_time()
        if group.state == GroupState.STABLE:
            return self._sync_response(group, member)
        member.sync_future = Future()
        if member_id == group.leader_id:
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
            group.state = GroupState.STABLE
            log.info("group %s: stable at generation %d", group.group_id, group.generation)
            for m in group.members.values():
                if m.sync_future is not None:
                    m.sync_future.set(self._sync_response(group, m))
        return await member.sync_future.wait()

    def _sync_response(self, group: Group, member: Member) -> dict[str, Any]:
        return {"error_code": 0, "protocol_type": group.protocol_type, "protocol_name": group.protocol_name,
                "assignment": member.assignment}

    def heartbeat(self, group_id: str, member_id: str, instance_id: str | None, generation: int) -> ErrorCode:
        group = self.groups.get(group_id)
        code, member = self._check_member(group, member_id, instance_id, generation)
        if member is not None:
            member.last_heartbeat = trio.current_time()
        if code or group is None:
            return code
        if group.state == GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(self, group_id: str, members: list[tuple[str, str | None]]) -> tuple[ErrorCode, list[dict[str, Any]]]:
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID, []
        results = []
        for member_id, instance_id in members:
            if instance_id is not None:
                owner = group.static_members.get(instance_id)
                if owner is None:
                    code = ErrorCode.UNKNOWN_MEMBER_ID
                elif member_id and owner != member_id:
                    code = ErrorCode.FENCED_INSTANCE_ID
                else:
                    code = ErrorCode.NONE
                    member_id = owner
            else:
                code = ErrorCode.NONE if member_id in group.members else ErrorCode.UNKNOWN_MEMBER_ID
            if code == ErrorCode.NONE:
                self._remove_member(group, group.members[member_id], f"{member_id} left")
            results.append({"member_id": member_id, "group_instance_id": instance_id, "error_code": code})
        return ErrorCode.NONE, results

    # ------------------------------------------------------------------ timers

    def tick(self) -> None:
        """Expire silent members and pending ids, end rebalances whose timeout or delay is over."""
        now = trio.current_time()
        for group in list(self.groups.values()):
            for mid, deadline in list(group.pending_members.items()):
                if now > deadline:
                    del group.pending_members[mid]
            for m in list(group.members.values()):
                if m.awaiting_join or m.awaiting_sync:
                    continue
                if now > m.last_heartbeat + m.session_timeout_ms / 1000:
                    log.info("group %s: member %s session expired", group.group_id, m.member_id)
                    self._remove_member(group, m, f"{m.member_id} session timed out")
            self._try_complete_join(group)

    def expire_offsets(self, now_ms: int) -> None:
        active = {g.group_id for g in self.groups.values() if g.members}
        for group, partitions in self.offsets.expired(self.offsets_retention_ms, now_ms, active).items():
            self._write(group, self.offsets.delete_records(group, partitions))

    # ------------------------------------------------------------------ offsets

    def _write(self, group_id: str, batch: bytes) -> None:
        self._append(group_id, batch)
        self.offsets.apply(batch)

    def commit_check(self, group_id: str, member_id: str, instance_id: str | None, generation: int) -> ErrorCode:
        """Kafka's rules for who may commit: a simple (generation -1) commit only to a group without members."""
        if self.consumer_groups is not None:
            code = self.consumer_groups.commit_check(group_id, member_id, generation)
            if code is not None:
                return code
        group = self.groups.get(group_id)
        if group is None or (generation < 0 and not group.members and not member_id):
            return ErrorCode.NONE
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation < 0 and group.state == GroupState.EMPTY:
            return ErrorCode.NONE
        if group.state == GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS  # Kafka checks this before the generation
        code, _ = self._check_member(group, member_id, instance_id, generation)
        return code

    def commit(self, group_id: str, offsets: dict[tuple[str, int], CommittedOffset]) -> None:
        if group_id not in self.groups and (self.consumer_groups is None or group_id not in self.consumer_groups.groups):
            self.groups[group_id] = Group(group_id)
        if offsets:
            self._write(group_id, self.offsets.commit_records(group_id, offsets))

    def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> None:
        if partitions:
            self._write(group_id, self.offsets.delete_records(group_id, partitions))

    def delete_topic_offsets(self, topic: str) -> None:
        """A deleted topic's committed offsets go with it (Kafka does the same)."""
        for group_id in self.offsets.groups():
            partitions = [tp for tp in self.offsets.get(group_id) if tp[0] == topic]
            self.delete_offsets(group_id, partitions)

    def subscribed_topics(self, group_id: str) -> set[str]:
        """Topics the group's consumer-protocol members subscribe to (OffsetDelete refuses those)."""
        from .consumer_protocol import subscription_topics
        group = self.groups.get(group_id)
        if group is None or group.protocol_type != "consumer":
            return set()
        topics: set[str] = set()
        for m in group.members.values():
            topics |= subscription_topics(m.metadata(group.protocol_name or ""))
        return topics

    # ------------------------------------------------------------------ admin

    def group_ids(self) -> list[str]:
        """Classic groups and groups known only by their committed offsets."""
        kip848 = set(self.consumer_groups.groups) if self.consumer_groups is not None else set()
        return sorted((set(self.groups) | set(self.offsets.groups())) - kip848)

    def state_of(self, group_id: str) -> GroupState | None:
        group = self.groups.get(group_id)
        if group is not None:
            return group.state
        return GroupState.EMPTY if self.offsets.get(group_id) else None

    def delete_group(self, group_id: str) -> ErrorCode:
        state = self.state_of(group_id)
        if state is None:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if state != GroupState.EMPTY:
            return ErrorCode.NON_EMPTY_GROUP
        self._write(group_id, self.offsets.delete_group_records(group_id))
        self.groups.pop(group_id, None)
        return ErrorCode.NONE
