"""The classic group coordinator: JoinGroup/SyncGroup/Heartbeat/LeaveGroup and the group timers.

Follows Kafka's GroupMetadataManager (group-coordinator module): the state machine of group.py,
JoinGroup and SyncGroup parked until the rebalance completes (every parked call is answered:
by the rebalance, an error, or at the latest after its rebalance timeout), MEMBER_ID_REQUIRED on a
first join (KIP-394), static membership (KIP-345), session, rebalance and pending-sync timeouts
checked by `tick`. The leader's assignment is stored as a group metadata record of
__consumer_offsets before it is applied. Committed offsets, loading and admin are in
offset_coordinator.py, the base class.

Calls take plain values and return the types of results.py; no request or response is seen here.
"""

from __future__ import annotations

import logging
import uuid

import trio

from ..protocol.errors import ErrorCode
from .group import Future, Group, GroupState, Member
from .offset_coordinator import OffsetCoordinator
from .ownership import append_error
from .persistence import group_record
from .results import JoinMember, JoinResult, LeaveResult, SyncResult

log = logging.getLogger("pykbroker.group")

Protocols = list[tuple[str, bytes]]


class GroupCoordinator(OffsetCoordinator):
    # ------------------------------------------------------------------ join

    async def join(self, group_id: str, member_id: str, instance_id: str | None, protocol_type: str,
                   protocols: Protocols, session_timeout_ms: int, rebalance_timeout_ms: int,
                   client_id: str, client_host: str, require_known_member_id: bool) -> JoinResult:
        if not group_id:
            return JoinResult(ErrorCode.INVALID_GROUP_ID, member_id=member_id)
        if not self.limits.min_session_timeout_ms <= session_timeout_ms <= self.limits.max_session_timeout_ms:
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id=member_id)
        code = self.status(group_id)
        if code:
            return JoinResult(code, member_id=member_id)
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member_id)
            group = self.groups[group_id] = Group(group_id)
        if not self._accepts(group, member_id):
            existing = group.members.get(member_id)
            if existing is not None:
                self._remove_member(group, existing, f"{member_id} rejoined a full group")
            return JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED)
        if group.state == GroupState.DEAD:
            return JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id=member_id)
        if not group.supports(protocol_type, protocols, member_id):
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
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
                return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=new_id)
            return await self._add_member(group, new_member(new_id))
        if member_id in group.pending_members:
            del group.pending_members[member_id]
            return await self._add_member(group, new_member(member_id))
        code = self._validate_member(group, member_id, instance_id)
        if code:
            return JoinResult(code, member_id=member_id)
        return await self._update_member(group, group.members[member_id], protocols, session_timeout_ms,
                                         rebalance_timeout_ms)

    def _accepts(self, group: Group, member_id: str) -> bool:
        """Kafka's acceptJoiningMember: group.max.size counts members (awaiting ones while preparing)."""
        limit = self.limits.max_size
        member = group.members.get(member_id)
        if group.state in (GroupState.EMPTY, GroupState.DEAD):
            return True
        if group.state == GroupState.PREPARING_REBALANCE:
            return (member is not None and member.awaiting_join) or \
                sum(m.awaiting_join for m in group.members.values()) < limit
        return member is not None or len(group.members) < limit

    @staticmethod
    def _park_join(member: Member) -> "Future[JoinResult]":
        """The member's parked JoinGroup; a repeated JoinGroup shares the parked one's answer."""
        if member.join_future is None or member.join_future.done:
            member.join_future = Future()
        return member.join_future

    async def _await_join(self, group: Group, member: Member, future: "Future[JoinResult]") -> JoinResult:
        return await future.wait(self._safety_s(group),
                                 JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member_id=member.member_id))

    def _safety_s(self, group: Group) -> float:
        """Longest a parked call can wait: the timers answer it within the rebalance timeout (+ delay)."""
        return 2 * group.rebalance_timeout_s + self.initial_rebalance_delay_s + 1

    async def _add_member(self, group: Group, member: Member) -> JoinResult:
        if not group.members:
            group.protocol_type = member.protocol_type
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static_members[member.group_instance_id] = member.member_id
        future = self._park_join(member)
        if group.state == GroupState.PREPARING_REBALANCE:
            if group.initial_delay_until:
                # Kafka's InitialDelayedJoin: each newcomer extends the wait, within the rebalance timeout.
                group.initial_delay_until = min(trio.current_time() + self.initial_rebalance_delay_s,
                                                group.rebalance_deadline)
        else:
            self._prepare_rebalance(group, f"{member.member_id} joined")
        self._try_complete_join(group)
        return await self._await_join(group, member, future)

    async def _update_member(self, group: Group, member: Member, protocols: Protocols,
                             session_timeout_ms: int, rebalance_timeout_ms: int) -> JoinResult:
        changed = protocols != member.protocols
        member.protocols = protocols
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.last_heartbeat = trio.current_time()
        if group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE) and not changed and (
                group.state == GroupState.COMPLETING_REBALANCE or member.member_id != group.leader_id):
            return self._join_result(group, member)  # nothing changed: the current generation stands
        future = self._park_join(member)
        if group.state != GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, f"{member.member_id} rejoined with new metadata")
        self._try_complete_join(group)
        return await self._await_join(group, member, future)

    async def _static_rejoin(self, group: Group, old_id: str, member: Member) -> JoinResult:
        """A static member restarted (or a duplicate took its instance id): the new id replaces the old."""
        old = group.members.pop(old_id)
        leader_was_old = group.leader_id == old_id
        member.assignment = old.assignment
        group.members[member.member_id] = member
        group.static_members[member.group_instance_id or ""] = member.member_id
        if leader_was_old:
            group.leader_id = member.member_id
        if group.state == GroupState.STABLE and member.protocols == old.protocols:
            code = self._store(group)
            if code:  # not stored: the old member stands, as Kafka reverts it
                del group.members[member.member_id]
                group.members[old_id] = old
                group.static_members[member.group_instance_id or ""] = old_id
                if leader_was_old:
                    group.leader_id = old_id
                return JoinResult(code, member_id=member.member_id)
            self._fence(old)
            group.pending_sync.discard(old_id)
            log.info("group %s: static member %s is back, assignment kept", group.group_id, member.group_instance_id)
            return self._join_result(group, member)._replace(skip_assignment=member.member_id == group.leader_id)
        self._fence(old)
        group.pending_sync.discard(old_id)
        future = self._park_join(member)
        if group.state != GroupState.PREPARING_REBALANCE:
            self._prepare_rebalance(group, f"static member {member.group_instance_id} rejoined")
        self._try_complete_join(group)
        return await self._await_join(group, member, future)

    @staticmethod
    def _fence(old: Member) -> None:
        if old.join_future is not None:
            old.join_future.set(JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id=old.member_id))
        if old.sync_future is not None:
            old.sync_future.set(SyncResult(ErrorCode.FENCED_INSTANCE_ID))

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        protocol = group.protocol_name or ""
        members = tuple(JoinMember(m.member_id, m.group_instance_id, m.metadata(protocol))
                        for m in group.members.values()) if member.member_id == group.leader_id else ()
        return JoinResult(ErrorCode.NONE, group.generation, group.protocol_type, group.protocol_name,
                          group.leader_id or "", member.member_id, members)

    # ------------------------------------------------------------------ rebalance

    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        if group.state == GroupState.COMPLETING_REBALANCE:
            self._fail_syncs(group, ErrorCode.REBALANCE_IN_PROGRESS)
        group.pending_sync.clear()
        now = trio.current_time()
        group.rebalance_deadline = now + group.rebalance_timeout_s
        group.initial_delay_until = 0.0
        if group.state == GroupState.EMPTY and self.initial_rebalance_delay_s > 0:
            group.initial_delay_until = min(now + self.initial_rebalance_delay_s, group.rebalance_deadline)
        group.state = GroupState.PREPARING_REBALANCE
        log.info("group %s: preparing rebalance (generation %d): %s", group.group_id, group.generation, reason)

    @staticmethod
    def _fail_syncs(group: Group, code: ErrorCode) -> None:
        """Kafka's resetAndPropagateAssignmentWithError: parked SyncGroups get `code`."""
        for m in group.members.values():
            m.assignment = b""
            if m.sync_future is not None:
                m.sync_future.set(SyncResult(code))

    def _try_complete_join(self, group: Group) -> None:
        if group.state != GroupState.PREPARING_REBALANCE:
            return
        now = trio.current_time()
        if group.initial_delay_until and now < group.initial_delay_until:
            return
        if group.all_joined() or now >= group.rebalance_deadline:
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        for m in [m for m in group.members.values() if not m.awaiting_join and m.group_instance_id is None]:
            log.info("group %s: removing %s, which did not rejoin in time", group.group_id, m.member_id)
            self._drop(group, m)
        joined = [m for m in group.members.values() if m.awaiting_join]
        if group.members and not joined:
            # Only static members that did not rejoin are left: wait another rebalance timeout (Kafka).
            group.rebalance_deadline = trio.current_time() + group.rebalance_timeout_s
            return
        group.pending_members.clear()
        group.initial_delay_until = 0.0
        group.generation += 1
        if not group.members:
            group.state = GroupState.EMPTY
            group.protocol_name = group.leader_id = None
            log.info("group %s: empty at generation %d", group.group_id, group.generation)
            code = self._store(group)
            if code:  # as Kafka: no member is affected, the group just stays as last stored
                log.warning("group %s: could not store the empty group: %s", group.group_id, code.name)
            return
        group.protocol_name = group.select_protocol()
        if group.leader_id not in {m.member_id for m in joined}:
            group.leader_id = joined[0].member_id
        group.state = GroupState.COMPLETING_REBALANCE
        now = trio.current_time()
        group.pending_sync = set(group.members)
        group.sync_deadline = now + group.rebalance_timeout_s
        log.info("group %s: generation %d with %d member(s), protocol %s", group.group_id, group.generation,
                 len(group.members), group.protocol_name)
        for m in group.members.values():
            m.assignment = b""
            m.last_heartbeat = now
            if m.join_future is not None:
                m.join_future.set(self._join_result(group, m))

    def _drop(self, group: Group, member: Member) -> None:
        group.members.pop(member.member_id, None)
        group.pending_sync.discard(member.member_id)
        if member.group_instance_id is not None and group.static_members.get(member.group_instance_id) == member.member_id:
            del group.static_members[member.group_instance_id]
        if group.leader_id == member.member_id:
            group.leader_id = None

    def _remove_member(self, group: Group, member: Member, reason: str) -> None:
        if member.join_future is not None:
            member.join_future.set(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id=member.member_id))
        if member.sync_future is not None:
            member.sync_future.set(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        self._drop(group, member)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        self._try_complete_join(group)

    def _store(self, group: Group, assignments: dict[str, bytes] | None = None) -> ErrorCode:
        """Write the group's metadata record; the error a client gets if that failed."""
        try:
            self._append(self.partition_for(group.group_id), group_record(group, assignments))
        except Exception as e:  # noqa: BLE001 - every failed write is answered, see append_error
            return append_error(e)
        return ErrorCode.NONE

    # ------------------------------------------------------------------ sync, heartbeat, leave

    def _validate_member(self, group: Group, member_id: str, instance_id: str | None) -> ErrorCode:
        """Kafka's ClassicGroup.validateMember."""
        if instance_id is not None:
            owner = group.static_members.get(instance_id)
            if owner is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if owner != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        return ErrorCode.NONE if member_id in group.members else ErrorCode.UNKNOWN_MEMBER_ID

    def _check_member(self, group: Group | None, member_id: str, instance_id: str | None,
                      generation: int) -> ErrorCode:
        if group is None or not group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        code = self._validate_member(group, member_id, instance_id)
        if code:
            return code
        return ErrorCode.ILLEGAL_GENERATION if generation != group.generation else ErrorCode.NONE

    async def sync(self, group_id: str, member_id: str, instance_id: str | None, generation: int,
                   protocol_type: str | None, protocol_name: str | None,
                   assignments: dict[str, bytes]) -> SyncResult:
        code = self.status(group_id)
        if code:
            return SyncResult(code)
        group = self.groups.get(group_id)
        code = self._check_member(group, member_id, instance_id, generation)
        if code or group is None:
            return SyncResult(code)
        if (protocol_type is not None and protocol_type != group.protocol_type) or \
                (protocol_name is not None and protocol_name != group.protocol_name):
            return SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        if group.state == GroupState.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        member = group.members[member_id]
        member.last_heartbeat = trio.current_time()
        group.pending_sync.discard(member_id)
        if group.state == GroupState.STABLE:
            return self._sync_result(group, member)
        if member.sync_future is None or member.sync_future.done:
            member.sync_future = Future()  # else a repeated SyncGroup shares the parked one's answer
        future = member.sync_future
        if member_id == group.leader_id:
            self._store_assignment(group, assignments)
        return await future.wait(self._safety_s(group), SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))

    def _store_assignment(self, group: Group, assignments: dict[str, bytes]) -> None:
        """The leader's assignment: stored first; applied and handed out only once stored."""
        full = {m: assignments.get(m, b"") for m in group.members}
        missing = [m for m in group.members if m not in assignments]
        if missing:
            log.warning("group %s: empty assignment for %s at generation %d", group.group_id, missing,
                        group.generation)
        code = self._store(group, full)
        if code:
            log.warning("group %s: could not store the assignment of generation %d: %s", group.group_id,
                        group.generation, code.name)
            self._fail_syncs(group, code)
            self._prepare_rebalance(group, f"error {code.name} storing the assignment")
            self._try_complete_join(group)
            return
        for mid, assignment in full.items():
            group.members[mid].assignment = assignment
        group.state = GroupState.STABLE
        log.info("group %s: stable at generation %d", group.group_id, group.generation)
        for m in group.members.values():
            if m.sync_future is not None:
                m.sync_future.set(self._sync_result(group, m))

    @staticmethod
    def _sync_result(group: Group, member: Member) -> SyncResult:
        return SyncResult(ErrorCode.NONE, group.protocol_type, group.protocol_name, member.assignment)

    def heartbeat(self, group_id: str, member_id: str, instance_id: str | None, generation: int) -> ErrorCode:
        """Kafka's answers: REBALANCE_IN_PROGRESS while preparing; NONE in CompletingRebalance and Stable
        (a leader that never syncs is removed by the pending-sync timeout, not by heartbeats)."""
        code = self.status(group_id)
        if code:
            return code
        group = self.groups.get(group_id)
        code = self._check_member(group, member_id, instance_id, generation)
        if code or group is None:
            return code
        if group.state == GroupState.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        group.members[member_id].last_heartbeat = trio.current_time()
        if group.state == GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(self, group_id: str, members: list[tuple[str, str | None]]) -> tuple[ErrorCode, list[LeaveResult]]:
        code = self.status(group_id)
        if code:
            return code, []
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID, []
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, []
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
            elif member_id in group.pending_members:
                del group.pending_members[member_id]  # it never joined: nothing to rebalance
                code = ErrorCode.NONE
                member_id = ""
            else:
                code = ErrorCode.NONE if member_id in group.members else ErrorCode.UNKNOWN_MEMBER_ID
            if code == ErrorCode.NONE and member_id:
                self._remove_member(group, group.members[member_id], f"{member_id} left")
            results.append(LeaveResult(member_id, instance_id, code))
        return ErrorCode.NONE, results

    # ------------------------------------------------------------------ timers

    def tick(self) -> None:
        """Expire silent members, pending ids and pending syncs; end rebalances whose time is up."""
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
            if group.pending_sync and now >= group.sync_deadline and group.state in (
                    GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
                late = sorted(group.pending_sync)
                log.info("group %s: removing %s, which did not send SyncGroup in time", group.group_id, late)
                for mid in late:
                    member = group.members.get(mid)
                    if member is not None:
                        self._drop(group, member)
                self._prepare_rebalance(group, f"removed {late} on pending sync expiration")
            self._try_complete_join(group)

    def _answer_all(self, group: Group, code: ErrorCode) -> None:
        """Answer every parked call of a group this coordinator stops serving."""
        for m in group.members.values():
            if m.join_future is not None:
                m.join_future.set(JoinResult(code, member_id=m.member_id))
            if m.sync_future is not None:
                m.sync_future.set(SyncResult(code))
