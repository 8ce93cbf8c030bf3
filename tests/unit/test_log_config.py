"""LogConfig: Kafka names, validation messages naming the key, broker-level defaults."""

from __future__ import annotations

import pytest

from pykbroker.log import InvalidConfigError, LogConfig
from pykbroker.log.config import LONG_MAX


def test_defaults_match_kafka() -> None:
    c = LogConfig()
    assert c.segment_bytes == 1 << 30
    assert c.segment_ms == 7 * 24 * 3600 * 1000
    assert c.retention_ms == 7 * 24 * 3600 * 1000
    assert c.retention_bytes == -1
    assert c.max_message_bytes == 1048588
    assert c.index_interval_bytes == 4096
    assert c.segment_index_bytes == 10 * 1024 * 1024
    assert c.flush_messages == LONG_MAX and c.flush_ms == LONG_MAX
    assert c.message_timestamp_type == "CreateTime" and not c.log_append_time
    assert c.cleanup_policy == ("delete",) and c.delete_enabled and not c.compact_enabled
    assert c.compression_type == "producer" and c.target_compression is None


def test_from_kafka_configs() -> None:
    c = LogConfig.from_kafka_configs(
        {
            "segment.bytes": "2097152",
            "retention.ms": "-1",
            "message.timestamp.type": "LogAppendTime",
            "cleanup.policy": "compact, delete",
            "compression.type": "zstd",
            "min.insync.replicas": "2",
            "flush.messages": "1",
            "segment.ms": None,  # null = default
        }
    )
    assert c.segment_bytes == 2097152 and c.retention_ms == -1 and c.log_append_time
    assert c.cleanup_policy == ("compact", "delete") and c.compact_enabled
    assert c.target_compression == 4 and c.flush_messages == 1
    assert c.segment_ms == LogConfig().segment_ms
    assert c.other == {"min.insync.replicas": "2"}
    described = c.to_kafka_configs()
    assert described["segment.bytes"] == "2097152" and described["cleanup.policy"] == "compact,delete"
    assert described["min.insync.replicas"] == "2" and described["preallocate"] == "false"
    assert LogConfig.from_kafka_configs(described).to_kafka_configs() == described


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("segment.bytes", "abc", "segment.bytes: not a number"),
        ("segment.bytes", "1048575", "segment.bytes: value must be at least 1048576 .*internal.segment.bytes"),
        ("internal.segment.bytes", "13", "internal.segment.bytes: value must be at least 14"),
        ("compression.gzip.level", "0", "compression.gzip.level"),
        ("message.format.version", "9.9", "message.format.version"),
        ("retention.ms", "-2", "retention.ms"),
        ("message.timestamp.type", "Whenever", "message.timestamp.type"),
        ("cleanup.policy", "delete,shred", "cleanup.policy"),
        ("compression.type", "brotli", "compression.type"),
        ("min.insync.replicas", "0", "min.insync.replicas"),
        ("flush.messages", "0", "flush.messages"),
        ("preallocate", "maybe", "preallocate"),
        ("min.cleanable.dirty.ratio", "1.5", "min.cleanable.dirty.ratio"),
        ("no.such.config", "1", "Unknown topic config name: no.such.config"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match) as info:
        LogConfig.from_kafka_configs({key: value})
    assert info.value.error_code == 40


def test_overrides_layer_on_defaults() -> None:
    broker = LogConfig.from_kafka_configs({"retention.ms": "1000", "segment.bytes": "4194304"})
    topic = LogConfig.from_kafka_configs({"segment.bytes": "8388608"}, broker)
    assert topic.retention_ms == 1000 and topic.segment_bytes == 8388608


def test_from_broker_configs() -> None:
    c = LogConfig.from_broker_configs(
        {
            "log.retention.hours": "1",
            "log.segment.bytes": "1048576",
            "log.roll.hours": "2",
            "message.max.bytes": "500",
            "log.flush.interval.messages": "10",
            "log.message.timestamp.type": "LogAppendTime",
            "log.cleanup.policy": "compact",
        }
    )
    assert c.retention_ms == 3_600_000 and c.segment_ms == 7_200_000
    assert c.segment_bytes == 1048576 and c.max_message_bytes == 500 and c.flush_messages == 10
    assert c.log_append_time and c.cleanup_policy == ("compact",)
    # ms beats minutes beats hours, like Kafka
    c = LogConfig.from_broker_configs({"log.retention.ms": "5", "log.retention.minutes": "1", "log.retention.hours": "1"})
    assert c.retention_ms == 5
    c = LogConfig.from_broker_configs({"log.retention.minutes": "2", "log.retention.hours": "1"})
    assert c.retention_ms == 120_000
    with pytest.raises(InvalidConfigError, match="log.segment.bytes"):
        LogConfig.from_broker_configs({"log.segment.bytes": "1"})


def test_timestamp_difference_fallback() -> None:
    c = LogConfig.from_kafka_configs({"message.timestamp.difference.max.ms": "100"})
    assert c.timestamp_before_max_ms == 100 and c.timestamp_after_max_ms == 100
    c = LogConfig.from_kafka_configs(
        {"message.timestamp.difference.max.ms": "100", "message.timestamp.before.max.ms": "7"}
    )
    assert c.timestamp_before_max_ms == 7 and c.timestamp_after_max_ms == 100


def test_ranges_and_names_come_from_kafkas_table() -> None:
    from pykbroker.log.config import OTHER_TOPIC_CONFIGS, kafka_topic_configs

    table = kafka_topic_configs()
    assert set(LogConfig.kafka_names()) | set(OTHER_TOPIC_CONFIGS) == set(table)
    # Kafka 4's own ranges: segment.bytes >= 1 MiB, with internal.segment.bytes for smaller rolls.
    c = LogConfig.from_kafka_configs({"internal.segment.bytes": "1000"})
    assert c.segment_size == 1000 and c.segment_bytes == LogConfig().segment_bytes
    assert "internal.segment.bytes" not in c.to_kafka_configs()
    assert LogConfig.from_kafka_configs({"max.decompressed.message.bytes": "10"}).other == {
        "max.decompressed.message.bytes": "10"}
    with pytest.raises(InvalidConfigError, match="max.decompressed.message.bytes"):
        LogConfig.from_kafka_configs({"max.decompressed.message.bytes": "0"})


def test_stored_small_segment_bytes_become_internal_segment_bytes() -> None:
    from pykbroker.log.config import upgrade_stored_configs

    assert upgrade_stored_configs({"segment.bytes": "1000", "retention.ms": "5"}) == {
        "internal.segment.bytes": "1000", "retention.ms": "5"}
    assert upgrade_stored_configs({"segment.bytes": "2097152"}) == {"segment.bytes": "2097152"}
    assert upgrade_stored_configs({"segment.bytes": "x"}) == {"segment.bytes": "x"}
