"""KIP-392 fetch from the closest replica: which replica a consumer should read from.

Only with ``replica.selector.class`` set to Kafka's RackAwareReplicaSelector (the one selector
Kafka ships, accepted under its Java class name); unset, consumers read from the leader. As in
Kafka (ReplicaManager.findPreferredReadReplica, RackAwareReplicaSelector), the leader answers a
Fetch v11+ of a consumer that sent a ``rack_id``: the candidates are the leader and the followers in
the ISR whose log end is at or past the fetch offset; among those in the consumer's rack the leader
if it is one, else the most caught-up (highest log end offset). The leader itself is never sent
as ``preferred_read_replica``: -1 means "read here".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from .partition import Partition

RACK_AWARE = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
#: The values replica.selector.class accepts ("" is Kafka's null: no selector).
SELECTORS = frozenset({"", RACK_AWARE})
NO_PREFERRED = -1


def preferred_read_replica(p: "Partition", client_rack: str, fetch_offset: int,
                           racks: Mapping[int, str | None]) -> int:
    r = p.replication
    if not client_rack or r is None or not r.is_leader:
        return NO_PREFERRED
    if racks.get(p.node_id) == client_rack:
        return NO_PREFERRED  # the leader is in the consumer's rack
    same_rack = [(state.log_end_offset, -f) for f, state in r.followers.items()
                 if f in p.isr and state.log_end_offset >= fetch_offset and racks.get(f) == client_rack]
    return -max(same_rack)[1] if same_rack else NO_PREFERRED
