"""Topic ids in place of names (KIP-516, KIP-848): Produce v13, OffsetCommit v10, OffsetFetch v10.

The logs and the group coordinator stay keyed by topic name, so a handler names each topic once at
the edge, as Kafka's KafkaApis does (`topic.setName(metadataCache.getTopicName(id))`), and answers
the topics whose id names nothing with UNKNOWN_TOPIC_ID.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ..protocol.primitives import ZERO_UUID, Msg

if TYPE_CHECKING:
    from ..broker import Broker


def name_by_id(broker: "Broker", topics: list[Msg]) -> set[int]:
    """Set each topic's `name` from its `topic_id` (in place); returns the id()s of the topics whose
    id is unknown (their name is set to "", as Kafka leaves it)."""
    unknown = set()
    for t in topics:
        found = broker.topic_by_id(t.topic_id)
        t["name"] = found.name if found else ""
        if found is None:
            unknown.add(id(t))
    return unknown


def id_of(broker: "Broker", name: str) -> uuid.UUID:
    """The topic's id, or the zero UUID for a topic that does not exist (Kafka's metadataCache.getTopicId)."""
    topic = broker.topic(name)
    return topic.topic_id if topic else ZERO_UUID
