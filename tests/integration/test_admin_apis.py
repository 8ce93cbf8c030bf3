"""Admin APIs through confluent-kafka's AdminClient: cluster, partitions, configs, delete records."""

from __future__ import annotations

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic,
)

from pykbroker.testing import RunningBroker


def test_cluster_partitions_configs_and_delete_records(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bs})
    cluster = admin.describe_cluster().result(10)
    assert cluster.cluster_id == kafka_broker.broker.cluster_id and len(cluster.nodes) == 1  # type: ignore[union-attr]

    admin.create_topics([NewTopic(topic_name, 1, 1, config={"retention.ms": "3600000"})])[topic_name].result(10)
    admin.create_partitions([NewPartitions(topic_name, 3)])[topic_name].result(10)
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 3

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "3600000" and not configs["retention.ms"].is_default
    assert configs["segment.bytes"].is_default
    change = ConfigResource(ConfigResource.Type.TOPIC, topic_name, incremental_configs=[
        ConfigEntry("retention.ms", "120000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
    admin.incremental_alter_configs([change])[change].result(10)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "120000"
    assert set(configs["cleanup.policy"].value.split(",")) == {"delete", "compact"}

    broker_configs = admin.describe_configs([ConfigResource(ConfigResource.Type.BROKER, "1")])
    assert "num.partitions" in list(broker_configs.values())[0].result(10)

    producer = Producer({"bootstrap.servers": bs})
    for i in range(10):
        producer.produce(topic_name, value=b"%d" % i, partition=0)
    producer.flush(10)
    deleted = admin.delete_records([TopicPartition(topic_name, 0, 6)])
    assert list(deleted.values())[0].result(10).low_watermark == 6
    consumer = Consumer({"bootstrap.servers": bs, "group.id": "x"})
    assert consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (6, 10)
    consumer.close()


def test_concurrent_incremental_alter_configs_of_one_topic_all_apply(kafka_broker: RunningBroker,
                                                                      topic_name: str) -> None:
    """Each alteration is applied to the topic's configs as they are when it runs, not as they
    were when its request arrived: none of several concurrent ones is lost."""
    from pykbroker.wire_client import WireClient

    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    keys = ["retention.ms", "segment.ms", "flush.ms", "delete.retention.ms", "min.compaction.lag.ms"]
    clients = [WireClient(kafka_broker.bootstrap_servers) for _ in keys]
    try:
        for i, (client, key) in enumerate(zip(clients, keys)):
            client.send(44, 1, {"resources": [{"resource_type": 2, "resource_name": topic_name, "configs": [
                {"name": key, "config_operation": 0, "value": str(100_000 + i)}]}], "validate_only": False})
        for client in clients:
            assert client.receive(44, 1)[1].responses[0].error_code == 0
    finally:
        for client in clients:
            client.close()
    described = admin.describe_configs([ConfigResource("TOPIC", topic_name)])
    configs = next(iter(described.values())).result(10)
    assert {k: configs[k].value for k in keys} == {k: str(100_000 + i) for i, k in enumerate(keys)}


def test_describe_configs_reports_sources_synonyms_and_types(tmp_path) -> None:
    """As Kafka: a topic config's source is where its value comes from (the topic's override, a broker
    setting, or the default), the synonyms list each of those, and config_type says the type."""
    from pykbroker.testing import running_broker
    from pykbroker.wire_client import WireClient

    with running_broker({"log.retention.hours": 24}, data_dir=tmp_path / "data") as broker:
        client = WireClient(broker.bootstrap_servers)
        try:
            client.request(19, 7, {"topics": [{"name": "described", "num_partitions": 1, "replication_factor": 1,
                                               "assignments": [], "configs": [{"name": "segment.ms", "value": "60000"}]}],
                                   "timeout_ms": 5000, "validate_only": False})
            r = client.request(32, 4, {"resources": [{"resource_type": 2, "resource_name": "described",
                                                      "configuration_keys": None}],
                                       "include_synonyms": True, "include_documentation": False})
        finally:
            client.close()
    entries = {c.name: c for c in r.results[0].configs}

    def synonyms(name: str) -> list[tuple[str, str, int]]:
        return [(s.name, s.value, s.source) for s in entries[name].synonyms]

    retention = entries["retention.ms"]
    assert (retention.value, retention.config_source) == ("86400000", 4)
    assert synonyms("retention.ms") == [("log.retention.hours", "24", 4), ("log.retention.hours", "168", 5)]
    assert entries["segment.ms"].config_source == 1
    assert synonyms("segment.ms") == [("segment.ms", "60000", 1), ("log.roll.hours", "168", 5)]
    assert entries["segment.bytes"].config_source == 5
    assert synonyms("segment.bytes") == [("log.segment.bytes", "1073741824", 5)]
    assert (entries["segment.bytes"].config_type, entries["cleanup.policy"].config_type,
            entries["preallocate"].config_type) == (3, 7, 1)  # INT, LIST, BOOLEAN
