"""Feature levels ApiVersions reports (KIP-584/KIP-1022), as a Kafka 4 broker does: only what is served.

A Kafka 4.4 broker supports metadata.version 7 (3.3-IV3) up to its latest and every production
feature whose latest level is above 0; a fresh cluster finalizes the latest levels. Here the levels
are those this broker implements: group.version 1 because the KIP-848 consumer group protocol is
served; transaction.version 2 because transactions v2 are (KIP-890 part 2: partitions added by
Produce v12 and TxnOffsetCommit v5, the epoch bumped by every EndTxn v5; level 1 only adds the
flexible transaction log record, which is written); kraft.version 0 (no KRaft quorum);
share.version, streams.version and eligible.leader.replicas.version 0 (not implemented). A feature
whose highest level is 0 is left out of both lists, as Kafka leaves it out (absent means level 0 to
clients). A Java 4 producer uses transactions v2 only when transaction.version 2 is finalized.
"""

from __future__ import annotations

#: metadata.version 24 is 4.0-IV2, where transaction.version 2 became the default (group.version 1
#: did at 4.0-IV0); the APIs served are Kafka 3.9's plus the 4.0 consumer group protocol and
#: transactions v2. ELR (4.0-IV1) is its own feature, eligible.leader.replicas.version, left at 0.
METADATA_VERSION = 24
#: The oldest metadata.version Kafka 4 supports (3.3-IV3).
MINIMUM_METADATA_VERSION = 7

#: name -> (lowest, highest) level this broker supports.
SUPPORTED: dict[str, tuple[int, int]] = {
    "metadata.version": (MINIMUM_METADATA_VERSION, METADATA_VERSION),
    "group.version": (0, 1),
    "transaction.version": (0, 2),
    "kraft.version": (0, 0),
}
#: name -> finalized level (one broker, so the finalized level is the highest supported).
FINALIZED: dict[str, int] = {name: high for name, (_, high) in SUPPORTED.items()}
#: Kafka's epoch is the metadata offset of the last feature change; the levels here never change,
#: and clients only take finalized features from an epoch >= 0.
FINALIZED_EPOCH = 0


def supported_features(request_version: int) -> list[dict[str, object]]:
    """Before v4 clients fail on a minimum of 0 (KAFKA-17011), so Kafka omits those features there."""
    return [{"name": name, "min_version": low, "max_version": high}
            for name, (low, high) in SUPPORTED.items() if high > 0 and (low > 0 or request_version >= 4)]


def finalized_features() -> list[dict[str, object]]:
    """Kafka reports each finalized level as both min and max; level-0 features are not finalized."""
    return [{"name": name, "min_version_level": level, "max_version_level": level}
            for name, level in FINALIZED.items() if level > 0]
