"""Topic changes in a 3-broker cluster (real ZooKeeper, `pykbroker serve` processes): CreatePartitions,
AlterConfigs / IncrementalAlterConfigs and DeleteTopics go through ZooKeeper as in Kafka's ZooKeeper
mode, and every broker applies them.

Run: nice -n 10 .venv/bin/python -m pytest -m cluster tests/integration/test_cluster_topic_changes.py -q
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from cluster import LocalCluster, local_cluster, wait_for
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry
from confluent_kafka.admin import ConfigResource as CkResource
from confluent_kafka.admin import NewPartitions as CkNewPartitions
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions

from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.records import Record, build_batch
from pykbroker.protocol.messages import API_KEYS
from pykbroker.tools.zookeeper import RunningZooKeeper
from pykbroker.wire_client import WireClient

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(zookeeper: RunningZooKeeper, tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(zookeeper, tmp_path, 3) as c:
        yield c


def topic_config(cluster: LocalCluster, via: int, topic: str, name: str) -> str | None:
    client = WireClient(cluster.brokers[via].bootstrap)
    try:
        r = client.request(API_KEYS["DESCRIBE_CONFIGS"], 4, {"resources": [
            {"resource_type": 2, "resource_name": topic, "configuration_keys": [name]}],
            "include_synonyms": False, "include_documentation": False})
    finally:
        client.close()
    return next((c.value for c in r.results[0].configs if c.name == name), None)


def produce_to(cluster: LocalCluster, topic: str, partition: int) -> int:
    leader = cluster.partition_state(1, topic, partition)[0]
    client = WireClient(cluster.brokers[leader].bootstrap)
    try:
        r = client.request(API_KEYS["PRODUCE"], 9, {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
                                                     "topic_data": [{"name": topic, "partition_data": [
                                                         {"index": partition, "records": build_batch([Record(0, 0, None, b"v", [])])}]}]})
    finally:
        client.close()
    return r.responses[0].partition_responses[0].error_code


def test_create_partitions_in_a_cluster(cluster: LocalCluster) -> None:
    cluster.create_topic("cp", partitions=1, replication=3, via=1)
    admin = KafkaAdminClient(bootstrap_servers=cluster.brokers[2].bootstrap)
    try:
        admin.create_partitions({"cp": NewPartitions(3)})
    finally:
        admin.close()
    for b in cluster.brokers:
        wait_for(f"broker {b} to see 3 led partitions", lambda: all(
            cluster.partition_state(b, "cp", p)[0] > 0 and len(cluster.partition_state(b, "cp", p)[2]) == 3
            for p in range(3)))
    assert produce_to(cluster, "cp", 2) == ErrorCode.NONE
    ck = AdminClient({"bootstrap.servers": cluster.brokers[3].bootstrap})
    with pytest.raises(Exception) as err:
        ck.create_partitions([CkNewPartitions("cp", 2)])["cp"].result(20)
    assert err.value.args[0].code() == ErrorCode.INVALID_PARTITIONS
    with pytest.raises(Exception) as err:
        ck.create_partitions([CkNewPartitions("cp", 4, replica_assignment=[[1, 9, 2]])])["cp"].result(20)
    assert err.value.args[0].code() == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    ck.create_partitions([CkNewPartitions("cp", 4, replica_assignment=[[3, 1, 2]])])["cp"].result(20)
    wait_for("partition 3 led by its first replica", lambda: cluster.partition_state(1, "cp", 3)[0] == 3)


def test_alter_configs_apply_on_every_broker(cluster: LocalCluster) -> None:
    cluster.create_topic("cfg", partitions=1, replication=3, via=1)
    admin = KafkaAdminClient(bootstrap_servers=cluster.brokers[2].bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "cfg", configs={"retention.ms": "123456"})])
    finally:
        admin.close()
    for b in cluster.brokers:
        wait_for(f"broker {b} to apply retention.ms", lambda: topic_config(cluster, b, "cfg", "retention.ms") == "123456")
    ck = AdminClient({"bootstrap.servers": cluster.brokers[3].bootstrap})
    resource = CkResource("TOPIC", "cfg", incremental_configs=[
        ConfigEntry("segment.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    ck.incremental_alter_configs([resource])[resource].result(20)
    for b in cluster.brokers:
        wait_for(f"broker {b} to apply segment.ms", lambda: topic_config(cluster, b, "cfg", "segment.ms") == "7200000")
        assert topic_config(cluster, b, "cfg", "retention.ms") == "123456"  # the incremental change kept it
    bad = CkResource("TOPIC", "cfg", incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(Exception) as err:
        ck.incremental_alter_configs([bad])[bad].result(20)
    assert err.value.args[0].code() == ErrorCode.INVALID_CONFIG


def test_delete_topics_removes_the_topic_and_its_data_everywhere(cluster: LocalCluster) -> None:
    cluster.create_topic("gone", partitions=2, replication=3, via=1)
    assert produce_to(cluster, "gone", 0) == ErrorCode.NONE
    ck = AdminClient({"bootstrap.servers": cluster.brokers[2].bootstrap})
    ck.delete_topics(["gone"])["gone"].result(30)
    for b in cluster.brokers:
        md = cluster.metadata(b, "gone")
        assert md.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION  # type: ignore[attr-defined]
        data = cluster.brokers[b].data_dir
        wait_for(f"broker {b}'s data of 'gone' removed",
                 lambda: not any(d.name.startswith("gone-") for d in data.iterdir()))
    cluster.create_topic("gone", partitions=1, replication=3, via=3)  # the name is free again
    wait_for("the new 'gone' led", lambda: cluster.partition_state(2, "gone")[0] > 0)
    assert produce_to(cluster, "gone", 0) == ErrorCode.NONE
