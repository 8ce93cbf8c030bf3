"""A classic group to and from its group metadata record, as Kafka stores and loads it."""

from __future__ import annotations

import time

from .group import Group, GroupState, Member
from .group_metadata import StoredGroup, StoredMember, encode_group_value
from .offsets import records_batch
from .offsets_schema import encode_group_key


def group_record(group: Group, assignments: dict[str, bytes] | None = None) -> bytes:
    """A batch holding the group's metadata; `assignments` (the leader's) replace the members' own."""
    protocol = group.protocol_name or ""
    members = tuple(
        StoredMember(m.member_id, m.group_instance_id, m.client_id, m.client_host, m.rebalance_timeout_ms,
                     m.session_timeout_ms, m.metadata(protocol),
                     assignments.get(m.member_id, b"") if assignments is not None else m.assignment)
        for m in group.members.values())
    stored = StoredGroup(group.protocol_type or "", group.generation, group.protocol_name, group.leader_id,
                         int(time.time() * 1000), members)
    return records_batch([(encode_group_key(group.group_id), encode_group_value(stored))])


def restore(group_id: str, stored: StoredGroup, now: float) -> Group:
    """The group as loaded: Stable with its members (their sessions start now), or Empty. As Kafka."""
    group = Group(group_id, generation=stored.generation, protocol_type=stored.protocol_type or None,
                  protocol_name=stored.protocol, leader_id=stored.leader)
    for m in stored.members:
        member = Member(m.member_id, m.group_instance_id, m.client_id, m.client_host, m.session_timeout_ms,
                        m.rebalance_timeout_ms, stored.protocol_type, [(stored.protocol or "", m.subscription)],
                        now, assignment=m.assignment)
        group.members[m.member_id] = member
        if m.group_instance_id is not None:
            group.static_members[m.group_instance_id] = m.member_id
    group.state = GroupState.STABLE if group.members else GroupState.EMPTY
    if not group.members:
        group.protocol_name = group.leader_id = None
    return group
