"""The matrix axes: features (rows) and clients (columns), in display order."""

from __future__ import annotations

FEATURES: dict[str, str] = {
    "metadata": "list topics and brokers",
    "admin-topics": "create, describe and delete a topic (admin API)",
    "produce-acks-0": "produce with acks=0, consume back",
    "produce-acks-1": "produce with acks=1, offsets acknowledged, consume back",
    "produce-acks-all": "produce with acks=all, offsets acknowledged, consume back",
    "compression-none": "uncompressed batches round trip",
    "compression-gzip": "gzip batches round trip",
    "compression-snappy": "snappy batches round trip",
    "compression-lz4": "lz4 batches round trip",
    "compression-zstd": "zstd batches round trip",
    "headers": "record headers round trip (repeated keys, empty values)",
    "large-message": "a 900 KiB value round trip at default size limits",
    "ordering-5000": "5,000 records on one partition come back in order, offsets 0..4999",
    "keyed-partitioning": "keyed records land where the client's partitioner says (4 partitions)",
    "consume-assign": "assign partitions, consume from the beginning, end offsets",
    "seek-offset": "seek to an offset and read from there",
    "offsets-for-times": "first offset whose timestamp >= T",
    "idempotent-producer": "idempotent producer: contiguous offsets, no duplicates",
    "transactions": "commit, abort, commit: read_committed skips the aborted records, markers take offsets",
    "fetch-sessions": "incremental fetch sessions (KIP-227): a consumer on 20 partitions keeps one session while it reads",
    "compaction": "cleanup.policy=compact: the log cleaner leaves each key's latest value at its offset",
    "admin-configs": "describe topic and broker configs (synonyms, documentation), alter a topic config (admin API)",
    "admin-partitions": "add partitions with explicit replica assignments; an unknown broker is refused (admin API)",
    "admin-log-dirs": "describe log dirs with partition sizes; move a replica to its own and to an unknown dir",
    "admin-replicas": "preferred leader election (not needed), list and alter partition reassignments (admin API)",
    "client-quotas": "set, describe and remove client quotas; a producer over its byte rate is throttled",
    "group-commit-resume": "consumer group: subscribe, commit, a new member resumes at the commit",
    "group-list-describe": "list and describe consumer groups (admin API)",
}

CLIENTS: tuple[str, ...] = ("kafka-python", "confluent-kafka", "aiokafka", "java", "java-4", "kcat", "franz-go")

GROUP_FEATURES = tuple(f for f in FEATURES if f.startswith("group-"))
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
