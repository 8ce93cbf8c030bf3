"""`pykbroker groups list|describe`: kafka-consumer-groups.sh's --list and --describe."""

from __future__ import annotations

import argparse
import struct

from ..protocol.messages import codec
from ..protocol.primitives import DecodeError, Msg
from .client import LATEST, Client, ToolError
from .table import dash, print_table

DESCRIBE_COLUMNS = ("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                    "CONSUMER-ID", "HOST", "CLIENT-ID")


def run(args: argparse.Namespace) -> int:
    with Client(args.bootstrap, args.timeout_ms / 1000) as client:
        if args.action == "list":
            rows = [(g.group_id, g.group_state, g.protocol_type) for g in client.list_groups()]
            print_table(("GROUP", "STATE", "PROTOCOL-TYPE"), sorted(rows))
            return 0
        return _describe(client, args.group)


def _describe(client: Client, group_id: str) -> int:
    group = client.describe_group(group_id)
    committed = client.committed(group_id)
    if group.group_state == "Dead" and not committed:
        raise ToolError(f"consumer group {group_id!r} does not exist")
    owners: dict[tuple[str, int], Msg] = {}
    for member in group.members:
        for topic, partition in assigned_partitions(bytes(member.member_assignment)):
            owners[(topic, partition)] = member
    keys = sorted(set(committed) | set(owners))
    ends: dict[tuple[str, int], int] = {}
    for topic in sorted({t for t, _ in keys}):
        # strict=False: offsets may stay committed for a partition that no longer exists
        for p, offset in client.list_offsets(topic, [p for t, p in keys if t == topic], LATEST, strict=False).items():
            ends[(topic, p)] = offset
    print(f"Consumer group '{group_id}': state {group.group_state}, {len(group.members)} member(s)"
          + (f", protocol {group.protocol_data}" if group.protocol_data else ""))
    print()
    rows = []
    for key in keys:
        current = committed.get(key, -1)
        end = ends.get(key)
        lag = end - current if end is not None and current >= 0 else None
        m = owners.get(key)
        rows.append((group_id, key[0], str(key[1]), dash(current if current >= 0 else None), dash(end), dash(lag),
                     m.member_id if m else "-", m.client_host if m else "-", m.client_id if m else "-"))
    print_table(DESCRIBE_COLUMNS, rows)
    return 0


def assigned_partitions(assignment: bytes) -> list[tuple[str, int]]:
    """(topic, partition) pairs of a consumer-protocol member assignment; unreadable -> none."""
    if len(assignment) < 2:
        return []
    version = min(struct.unpack_from(">h", assignment)[0], 3)  # newer versions only append fields
    try:
        a, _ = codec("consumer_protocol_assignment", max(version, 0)).decode(assignment, 2)
    except DecodeError:
        return []
    return [(t.topic, p) for t in a.assigned_partitions for p in t.partitions]


