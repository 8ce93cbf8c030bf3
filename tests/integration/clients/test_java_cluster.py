"""The Apache Kafka Java client (kafka-clients 3.9.1, tests/java/KafkaCheck.java) on a 3-broker cluster
(real ZooKeeper, `pykbroker serve` processes), bootstrapping from a broker that is not the controller:
it creates a replication-factor-3 topic, produces (acks=all, idempotent) and consumes everything back.
And transactions from kafka-clients 3.9.1 (v1: AddPartitionsToTxn) and 4.4.0 (v2: Produce v12 adds the
partition) where the partition's leader is not the transaction coordinator.

Run: nice -n 10 .venv/bin/python -m pytest -m cluster tests/integration/clients/test_java_cluster.py -q
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from cluster import local_cluster, wait_for

from pykbroker.tools.zookeeper import RunningZooKeeper

pytestmark = pytest.mark.cluster


def test_java_producer_and_consumer_bootstrap_from_a_non_controller_broker(
        zookeeper: RunningZooKeeper, tmp_path: Path, java_client: Callable[..., dict[str, Any]]) -> None:
    with local_cluster(zookeeper, tmp_path, 3, min_insync_replicas="2") as cluster:
        controller = cluster.metadata(1, "").controller_id  # type: ignore[attr-defined]
        via = next(i for i in cluster.brokers if i != controller)
        bs = cluster.brokers[via].bootstrap
        java_client(["admin", "--bootstrap", bs, "create-topic", "java-rf3", "--partitions", "3",
                     "--replication-factor", "3"])
        for b in cluster.brokers:
            wait_for(f"broker {b} to see java-rf3 fully replicated", lambda: all(
                cluster.partition_state(b, "java-rf3", p)[2] == [1, 2, 3] for p in range(3)))
        leaders = {cluster.partition_state(via, "java-rf3", p)[0] for p in range(3)}
        assert len(leaders) > 1  # the client has to talk to several brokers
        produced = java_client(["produce", "--bootstrap", bs, "--topic", "java-rf3", "--count", "600",
                                "--acks", "all", "--idempotence", "true"], timeout=90)
        assert produced["acked"] == 600
        consumed = java_client(["consume", "--bootstrap", bs, "--topic", "java-rf3", "--count", "600"], timeout=90)
        assert consumed["count"] == 600
        for field in ("value_bytes", "value_crc_sum", "partitions"):
            assert consumed[field] == produced[field], field


def test_java_transactions_where_the_leader_is_not_the_coordinator(
        zookeeper: RunningZooKeeper, tmp_path: Path, java_client: Callable[..., dict[str, Any]],
        java4x: Callable[..., dict[str, Any]]) -> None:
    """The leader asks the coordinator (another broker) about each transactional produce, and the
    coordinator's markers reach the leader by WriteTxnMarkers; fencing works across brokers too."""
    from confluent_kafka import Consumer, TopicPartition

    with local_cluster(zookeeper, tmp_path, 3, min_insync_replicas="2",
                       transaction_state_log_num_partitions="3") as cluster:
        for name, client in (("java-3", java_client), ("java-4", java4x)):
            topic = f"{name}-txn"
            cluster.create_topic(topic, partitions=1, replication=3)
            leader = wait_for(f"a leader for {topic}", lambda: max(cluster.partition_state(1, topic)[0], 0))
            txn_id = next(t for t in (f"{name}-{i}" for i in range(100)) if cluster.transaction_coordinator(t) != leader)
            r = client(["txn", "--bootstrap", cluster.bootstrap, "--topic", topic, "--transactional-id", txn_id,
                        "--plan", "commit:3,abort:2,commit:1", "--fence"], timeout=120)
            assert (r["commits"], r["aborts"], r["fenced"], r["fenced_by"]) == (2, 1, True, "ProducerFencedException")
            c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"{name}-check",
                          "isolation.level": "read_committed"})
            c.assign([TopicPartition(topic, 0, 0)])
            got = [m.value() for m in c.consume(num_messages=20, timeout=10) if m.error() is None]
            c.close()
            assert got == [b"commit-0", b"commit-1", b"commit-2", b"commit-5"], name
