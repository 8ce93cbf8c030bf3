"""What the group coordinator keeps in __consumer_offsets: loading and unloading its partitions,
committed offsets, and the admin view of groups (list, describe, delete).

Every change is appended (the `append` callback) before it is applied, so a failed write leaves
the in-memory state as it was and the client gets Kafka's error for it (see ownership.py).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

import trio

from ..protocol.errors import ErrorCode
from ..protocol.primitives import DecodeError
from ..protocol.records import CONTROL_TYPE_COMMIT, ControlRecordKeySchema, decode_records, iter_batches
from .consumer_protocol import subscription_topics
from .group import Group, GroupState
from .group_metadata import decode_group_value
from .offsets import OffsetStore
from .offsets_schema import CommittedOffset, OffsetKey, decode_key, decode_offset_value
from .ownership import Load, append_error, availability, partition_for
from .persistence import restore
from .results import GroupDescription, GroupListing, MemberDescription

if TYPE_CHECKING:
    from .consumer_group import ConsumerGroupCoordinator

log = logging.getLogger("pykbroker.group")

#: append(partition of __consumer_offsets, records batch); may raise (KafkaStorageError, OSError...)
Append = Callable[[int, bytes], None]


@dataclass(frozen=True)
class GroupLimits:
    """group.min.session.timeout.ms, group.max.session.timeout.ms, group.max.size (Kafka's defaults)."""

    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1800000
    max_size: int = 2**31 - 1

    @classmethod
    def from_config(cls, config: Any) -> "GroupLimits":
        return cls(config.group_min_session_timeout_ms, config.group_max_session_timeout_ms,
                   config.group_max_size)


class OffsetCoordinator:
    def __init__(self, append: Append, partitions: int, initial_rebalance_delay_ms: int = 0,
                 offsets_retention_ms: int = 7 * 24 * 3600 * 1000, limits: GroupLimits = GroupLimits()) -> None:
        self._append = append
        self.partitions = partitions
        self.initial_rebalance_delay_s = initial_rebalance_delay_ms / 1000
        self.offsets_retention_ms = offsets_retention_ms
        self.limits = limits
        self.groups: dict[str, Group] = {}
        self.offsets = OffsetStore()
        self.consumer_groups: "ConsumerGroupCoordinator | None" = None  # KIP-848 groups, consulted for theirs
        self._loads: dict[int, Load] = {}
        #: TxnOffsetCommit's offsets, by producer id then group: applied when the COMMIT marker
        #: reaches the group's partition, dropped on ABORT.
        self.pending_txn: dict[int, dict[str, dict[tuple[str, int], CommittedOffset]]] = {}

    # ------------------------------------------------------------------ ownership

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.partitions)

    def status(self, group_id: str) -> ErrorCode:
        """NONE if this coordinator serves the group; else COORDINATOR_LOAD_IN_PROGRESS or NOT_COORDINATOR."""
        return availability(self._loads.get(self.partition_for(group_id)))

    def begin_load(self, partition: int) -> None:
        """The partition is this coordinator's from now on; its groups answer LOAD_IN_PROGRESS until loaded."""
        self._loads[partition] = Load.LOADING

    def load(self, partition: int, batches: Iterable[bytes]) -> None:
        """Replay the partition's batches (oldest first) into offsets and groups, then serve them."""
        self.begin_load(partition)
        count = self.replay(partition, batches)
        self.finish_load(partition)
        if count:
            log.info("__consumer_offsets-%d: loaded %d batch(es)", partition, count)

    def replay(self, partition: int, batches: Iterable[bytes]) -> int:
        """Apply stored batches of a loading partition; returns how many. Loading may take several
        calls, so that a large partition does not hold the event loop."""
        try:
            now = trio.current_time()
        except RuntimeError:  # a Broker built outside trio (tools, unit tests): no timers run yet
            now = 0.0
        count = 0
        for batch in batches:
            count += 1
            header = next(iter_batches(batch))[1]
            if header.is_control:
                self._replay_marker(partition, header.producer_id, batch)
                continue
            for record in decode_records(batch):
                if record.key is None:
                    continue
                try:
                    key = decode_key(record.key)
                    if header.is_transactional and isinstance(key, OffsetKey) and record.value is not None:
                        self._pend(header.producer_id, key, decode_offset_value(record.value))
                    else:
                        self._replay(key, record.value, now)
                except (ValueError, DecodeError, struct.error) as e:
                    log.warning("__consumer_offsets-%d: skipped an unreadable record: %s", partition, e)
        return count

    def _replay_marker(self, partition: int, producer_id: int, batch: bytes) -> None:
        for record in decode_records(batch):
            if record.key is not None:
                commit = ControlRecordKeySchema.parse(record.key).type == CONTROL_TYPE_COMMIT
                self.complete_txn(partition, producer_id, commit)

    def finish_load(self, partition: int) -> None:
        """Serve the partition's groups (unless it was unloaded while loading)."""
        if self._loads.get(partition) is Load.LOADING:
            self._loads[partition] = Load.LOADED

    def _replay(self, key: OffsetKey | str | None, value: bytes | None, now: float) -> None:
        self.offsets.apply_record(key, value)
        if isinstance(key, str):
            if value is None:
                self.groups.pop(key, None)
            else:
                self.groups[key] = restore(key, decode_group_value(value), now)

    def unload(self, partition: int) -> None:
        """Stop serving the partition: parked calls get NOT_COORDINATOR, its state leaves memory."""
        self._loads.pop(partition, None)
        for group_id in [g for g in self.groups if self.partition_for(g) == partition]:
            self._answer_all(self.groups.pop(group_id), ErrorCode.NOT_COORDINATOR)
        for group_id in [g for g in self.offsets.groups() if self.partition_for(g) == partition]:
            self.offsets.drop(group_id)
        for groups in self.pending_txn.values():
            for group_id in [g for g in groups if self.partition_for(g) == partition]:
                del groups[group_id]
        if self.consumer_groups is not None:
            self.consumer_groups.unload(lambda g: self.partition_for(g) == partition)

    def loaded_partitions(self) -> list[int]:
        return sorted(p for p, s in self._loads.items() if s is Load.LOADED)

    def _answer_all(self, group: Group, code: ErrorCode) -> None:
        raise NotImplementedError  # the membership side knows its parked calls

    # ------------------------------------------------------------------ offsets

    def _write(self, group_id: str, batch: bytes) -> ErrorCode:
        """Append, then apply: a write that failed changes nothing."""
        try:
            self._append(self.partition_for(group_id), batch)
        except Exception as e:  # noqa: BLE001 - every failed write is answered, see append_error
            code = append_error(e)
            log.warning("group %s: write to __consumer_offsets failed (%s): %s", group_id, code.name, e)
            return code
        self.offsets.apply(batch)
        return ErrorCode.NONE

    def commit_check(self, group_id: str, member_id: str, instance_id: str | None, generation: int,
                     api_version: int = 9) -> ErrorCode:
        """Kafka's rules for who may commit (ClassicGroup.validateOffsetCommit): a member of the current
        generation may commit while a rebalance is pending; in CompletingRebalance it is told to wait."""
        code = self.status(group_id)
        if code:
            return code
        if self.consumer_groups is not None:
            consumer_code = self.consumer_groups.commit_check(group_id, member_id, generation)
            if consumer_code is not None:
                return consumer_code
        group = self.groups.get(group_id)
        if group is None:
            if generation < 0:
                return ErrorCode.NONE  # a "simple" group, created by the commit
            return ErrorCode.GROUP_ID_NOT_FOUND if api_version >= 9 else ErrorCode.ILLEGAL_GENERATION
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation < 0 and group.state == GroupState.EMPTY:
            return ErrorCode.NONE
        if generation >= 0 or member_id or instance_id is not None:
            code = self._validate_member(group, member_id, instance_id)
            if code:
                return code
            if generation != group.generation:
                return ErrorCode.ILLEGAL_GENERATION
        elif group.state != GroupState.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.state == GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def _validate_member(self, group: Group, member_id: str, instance_id: str | None) -> ErrorCode:
        raise NotImplementedError

    def commit(self, group_id: str, offsets: dict[tuple[str, int], CommittedOffset]) -> ErrorCode:
        """Store offsets that passed commit_check; NONE, or the write's error (nothing applied)."""
        if not offsets:
            return ErrorCode.NONE
        code = self._write(group_id, self.offsets.commit_records(group_id, offsets))
        if not code and group_id not in self.groups and (
                self.consumer_groups is None or group_id not in self.consumer_groups.groups):
            self.groups[group_id] = Group(group_id)
        return code

    # ------------------------------------------------------------------ transactional offsets

    def txn_commit(self, group_id: str, producer_id: int, producer_epoch: int, member_id: str,
                   instance_id: str | None, generation: int,
                   offsets: dict[tuple[str, int], CommittedOffset]) -> ErrorCode:
        """TxnOffsetCommit: the offsets are written now, as a transactional batch of the producer,
        and become the group's committed offsets only when its transaction commits."""
        code = self.commit_check(group_id, member_id, instance_id, generation) if generation >= 0 or member_id \
            else self.status(group_id)
        if code or not offsets:
            return code
        batch = self.offsets.commit_records(group_id, offsets, producer_id=producer_id,
                                            producer_epoch=producer_epoch)
        try:
            self._append(self.partition_for(group_id), batch)
        except Exception as e:  # noqa: BLE001 - every failed write is answered, see append_error
            return append_error(e)
        for (topic, partition), committed in offsets.items():
            self._pend(producer_id, OffsetKey(group_id, topic, partition), committed)
        if group_id not in self.groups and (self.consumer_groups is None or group_id not in self.consumer_groups.groups):
            self.groups[group_id] = Group(group_id)
        return ErrorCode.NONE

    def _pend(self, producer_id: int, key: OffsetKey, committed: CommittedOffset) -> None:
        self.pending_txn.setdefault(producer_id, {}).setdefault(key.group, {})[(key.topic, key.partition)] = committed

    def complete_txn(self, partition: int, producer_id: int, commit: bool) -> None:
        """A COMMIT/ABORT marker was written to (or replayed from) __consumer_offsets-`partition`."""
        groups = self.pending_txn.get(producer_id)
        if not groups:
            return
        for group_id in [g for g in groups if self.partition_for(g) == partition]:
            offsets = groups.pop(group_id)
            if commit:
                self.offsets.install(group_id, offsets)
        if not groups:
            del self.pending_txn[producer_id]

    def unstable_partitions(self, group_id: str) -> set[tuple[str, int]]:
        """Partitions with transactional offsets not yet committed (OffsetFetch's require_stable)."""
        return {tp for groups in self.pending_txn.values() for tp in groups.get(group_id, {})}

    def fetch_offsets(self, group_id: str) -> tuple[ErrorCode, dict[tuple[str, int], CommittedOffset]]:
        code = self.status(group_id)
        return (code, {}) if code else (ErrorCode.NONE, self.offsets.get(group_id))

    def offsets_deletable(self, group_id: str) -> tuple[ErrorCode, set[str]]:
        """OffsetDelete's group check, and the topics it must refuse (those the members subscribe to)."""
        code = self.status(group_id)
        if code:
            return code, set()
        state = self.state_of(group_id)
        if state is None or state == GroupState.DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND, set()
        group = self.groups.get(group_id)
        if group is None or not group.members:
            return ErrorCode.NONE, set()
        if group.protocol_type != "consumer":
            return ErrorCode.NON_EMPTY_GROUP, set()
        topics: set[str] = set()
        for m in group.members.values():
            topics |= subscription_topics(m.metadata(group.protocol_name or ""))
        return ErrorCode.NONE, topics

    def delete_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> ErrorCode:
        if not partitions:
            return ErrorCode.NONE
        return self._write(group_id, self.offsets.delete_records(group_id, partitions))

    def delete_topic_offsets(self, topic: str) -> None:
        """A deleted topic's committed offsets go with it (Kafka does the same)."""
        for group_id in self.offsets.groups():
            if self.status(group_id):
                continue
            self.delete_offsets(group_id, [tp for tp in self.offsets.get(group_id) if tp[0] == topic])

    def expire_offsets(self, now_ms: int) -> None:
        active = {g.group_id for g in self.groups.values() if g.members}
        for group, partitions in self.offsets.expired(self.offsets_retention_ms, now_ms, active).items():
            if not self.status(group):
                self._write(group, self.offsets.delete_records(group, partitions))

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

    def list_groups(self) -> tuple[ErrorCode, list[GroupListing]]:
        """Groups of the loaded partitions; COORDINATOR_LOAD_IN_PROGRESS while one is loading (Kafka)."""
        code = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if Load.LOADING in self._loads.values() else ErrorCode.NONE
        out = []
        for group_id in self.group_ids():
            state = self.state_of(group_id)
            if state is None or self.status(group_id):
                continue
            group = self.groups.get(group_id)
            out.append(GroupListing(group_id, (group.protocol_type if group else None) or "consumer",
                                    state.value, "classic"))
        if self.consumer_groups is not None:
            for group_id, cgroup in sorted(self.consumer_groups.groups.items()):
                if not self.status(group_id):
                    out.append(GroupListing(group_id, "consumer", cgroup.state, "consumer"))
        return code, out

    def describe(self, group_id: str) -> GroupDescription:
        code = self.status(group_id)
        if code:
            return GroupDescription(code, group_id, GroupState.DEAD.value)
        state = self.state_of(group_id)
        group = self.groups.get(group_id)
        if group is not None and group.members:
            protocol = group.protocol_name or ""
            stable = group.state == GroupState.STABLE
            members = tuple(MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                              m.metadata(protocol) if stable else b"",
                                              m.assignment if stable else b"")
                            for m in group.members.values())
            return GroupDescription(ErrorCode.NONE, group_id, group.state.value, group.protocol_type or "",
                                    protocol if stable else "", members)
        if state is None:
            return GroupDescription(ErrorCode.NONE, group_id, GroupState.DEAD.value)
        return GroupDescription(ErrorCode.NONE, group_id, state.value,
                                (group.protocol_type if group else None) or "consumer")

    def delete_group(self, group_id: str) -> ErrorCode:
        code = self.status(group_id)
        if code:
            return code
        state = self.state_of(group_id)
        if state is None:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if state != GroupState.EMPTY:
            return ErrorCode.NON_EMPTY_GROUP
        code = self._write(group_id, self.offsets.delete_group_records(group_id))
        if not code:
            self.groups.pop(group_id, None)
        return code
