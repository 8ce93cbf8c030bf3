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
        producer.produce(topic_name, key=b"k%d" % i, value=b"%d" % i, partition=0)  # compacted now: keyed
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


def test_legacy_alter_configs_replaces_the_overrides(kafka_broker: RunningBroker, topic_name: str) -> None:
    """confluent-kafka's alter_configs is the legacy AlterConfigs: the configs sent become the overrides."""
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic_name, 1, 1, config={"retention.ms": "1000"})])[topic_name].result(10)
    resource = ConfigResource("TOPIC", topic_name, set_config={"segment.ms": "7000"})
    admin.alter_configs([resource])[resource].result(10)
    assert kafka_broker.broker.logs.topics[topic_name].configs == {"segment.ms": "7000"}  # retention.ms reset
    from pykbroker.wire_client import WireClient

    client = WireClient(kafka_broker.bootstrap_servers)
    try:
        bad = client.request(33, 2, {"resources": [{"resource_type": 2, "resource_name": topic_name, "configs": [
            {"name": "retention.ms", "value": "lots"}]}], "validate_only": False})
        assert bad.responses[0].error_code == 40  # INVALID_CONFIG, and nothing changed
        assert kafka_broker.broker.logs.topics[topic_name].configs == {"segment.ms": "7000"}
    finally:
        client.close()


def test_log_dirs_elections_and_reassignments(kafka_broker: RunningBroker, topic_name: str) -> None:
    """With every replica on this one node, answered as Kafka answers when nothing can move."""
    from confluent_kafka import ElectionType, TopicPartition as TP

    from pykbroker.protocol.errors import ErrorCode
    from pykbroker.wire_client import WireClient

    bs = kafka_broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic_name, 2, 1)])[topic_name].result(10)
    p = Producer({"bootstrap.servers": bs})
    p.produce(topic_name, b"x" * 100, partition=1)
    p.flush(10)
    election = admin.elect_leaders(ElectionType.PREFERRED, [TP(topic_name, 0)]).result(10)
    assert election[TP(topic_name, 0)] is not None and election[TP(topic_name, 0)].code() == ErrorCode.ELECTION_NOT_NEEDED
    client = WireClient(bs)
    try:
        dirs = client.request(35, 4, {"topics": [{"topic": topic_name, "partitions": [0, 1]}]})
        result = dirs.results[0]
        sizes = {p.partition_index: p.partition_size for t in result.topics for p in t.partitions}
        assert sizes[0] == 0 and sizes[1] > 100 and result.total_bytes >= result.usable_bytes > 0
        listed = client.request(46, 0, {"timeout_ms": 5000, "topics": None})
        assert (listed.error_code, listed.topics) == (0, [])
        moved = client.request(45, 0, {"timeout_ms": 5000, "topics": [{"name": topic_name, "partitions": [
            {"partition_index": 0, "replicas": [1]}, {"partition_index": 1, "replicas": [2]},
            {"partition_index": 1, "replicas": None}]}]})
        assert [q.error_code for q in moved.responses[0].partitions] == [
            0, ErrorCode.INVALID_REPLICA_ASSIGNMENT, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS]
    finally:
        client.close()


def test_create_partitions_with_explicit_assignments(kafka_broker: RunningBroker, topic_name: str) -> None:
    """Assignments naming this broker are accepted; others get Kafka's INVALID_REPLICA_ASSIGNMENT."""
    from confluent_kafka import KafkaException
    from kafka.admin import KafkaAdminClient
    from kafka.errors import InvalidReplicationAssignmentError

    bs = kafka_broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    admin.create_partitions([NewPartitions(topic_name, 3, replica_assignment=[[1], [1]])])[topic_name].result(10)
    for assignment, message in (([[2]], "includes broker 2, but no such broker is registered"),
                                ([[1, 1]], "includes the broker 1 more than once"),
                                ([[1], [1]], "Attempted to add 1 additional partition(s), but only 2")):
        try:
            admin.create_partitions([NewPartitions(topic_name, 4, replica_assignment=assignment)])[topic_name].result(10)
            raise AssertionError(f"{assignment} accepted")
        except KafkaException as e:
            assert e.args[0].name() == "INVALID_REPLICA_ASSIGNMENT" and message in e.args[0].str()
    kp = KafkaAdminClient(bootstrap_servers=bs)
    try:
        kp.create_partitions({topic_name: {"count": 5, "assignments": [[1], [1]]}})
        try:
            kp.create_partitions({topic_name: {"count": 6, "assignments": [[7]]}})
            raise AssertionError("broker 7 accepted")
        except InvalidReplicationAssignmentError:
            pass
    finally:
        kp.close()
    assert kafka_broker.broker.topic(topic_name).partitions == 5  # type: ignore[union-attr]


def test_kafka_python_log_dirs_replicas_and_reassignments(kafka_broker: RunningBroker, topic_name: str) -> None:
    """kafka-python's admin: log dir sizes, moving a replica to its own dir (done) or an unknown one
    (LOG_DIR_NOT_FOUND), preferred elections (not needed) and reassignments (none in progress)."""
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient
    from kafka.errors import LogDirNotFoundError, NoError, UnknownTopicOrPartitionError

    bs = kafka_broker.bootstrap_servers
    admin = KafkaAdminClient(bootstrap_servers=bs)
    try:
        admin.create_topics({topic_name: {"num_partitions": 2, "replication_factor": 1}})
        producer = KafkaProducer(bootstrap_servers=bs)
        producer.send(topic_name, b"z" * 500, partition=1).get(10)
        producer.close()
        [described] = admin.describe_log_dirs({topic_name: [0, 1]})
        [log_dir] = described["log_dirs"]
        sizes = {p["partition_index"]: p["partition_size"] for t in log_dir["topics"] for p in t["partitions"]}
        assert sizes[0] == 0 and sizes[1] > 500
        path = log_dir["log_dir"]
        moved = admin.alter_replica_log_dirs({(topic_name, 0, 1): path, (topic_name, 1, 1): "/no/such/dir",
                                              ("no-such-topic", 0, 1): path})
        assert {(k.topic, k.partition): v for k, v in moved.items()} == {
            (topic_name, 0): NoError, (topic_name, 1): LogDirNotFoundError,
            ("no-such-topic", 0): UnknownTopicOrPartitionError}
        assert admin.list_partition_reassignments() == {}
    finally:
        admin.close()


def test_describe_configs_documentation(kafka_broker: RunningBroker, topic_name: str) -> None:
    """DescribeConfigs v3+ with include_documentation: Kafka's own text for each name; without it, null."""
    from pykbroker.wire_client import WireClient

    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic_name, 1, 1)])[topic_name].result(10)
    client = WireClient(kafka_broker.bootstrap_servers)
    try:
        def describe(resource_type: int, name: str, documentation: bool) -> dict:
            r = client.request(32, 4, {"resources": [{"resource_type": resource_type, "resource_name": name,
                                                      "configuration_keys": None}],
                                       "include_synonyms": False, "include_documentation": documentation})
            return {c.name: c for c in r.results[0].configs}
        topic = describe(2, topic_name, True)
        assert topic["retention.ms"].documentation.startswith("This configuration controls the maximum time")
        assert all(c.documentation for c in topic.values())
        assert describe(2, topic_name, False)["retention.ms"].documentation is None
        broker = describe(4, "1", True)
        assert broker["num.partitions"].documentation.startswith("The default number of log partitions per topic")
        assert broker["log.retention.hours"].value == "168" and broker["log.retention.hours"].config_source == 5
    finally:
        client.close()
