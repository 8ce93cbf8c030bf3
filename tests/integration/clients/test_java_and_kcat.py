"""The Java client (kafka-clients 3.9.1, default settings: idempotent) and kcat against pykbroker."""

from __future__ import annotations

import uuid

import pytest

from integration.clients.java import produce_then_consume
from pykbroker.testing import RunningBroker


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_java_default_idempotent_producer_then_consumer(kafka_broker: RunningBroker, java_client) -> None:
    bs = kafka_broker.bootstrap_servers
    topic = _topic("java")
    java_client(["admin", "--bootstrap", bs, "create-topic", topic, "--partitions", "3"])
    produced = java_client(["produce", "--bootstrap", bs, "--topic", topic, "--count", "2000"])
    assert produced["acked"] == 2000 and produced["failed"] == 0
    consumed = java_client(["consume", "--bootstrap", bs, "--topic", topic, "--count", "2000"])
    assert consumed["count"] == 2000
    for field in ("value_bytes", "value_crc_sum", "partitions", "first_offset", "last_offset"):
        assert consumed[field] == produced[field], field


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_java_compression(kafka_broker: RunningBroker, java_client, compression: str) -> None:
    bs = kafka_broker.bootstrap_servers
    topic = _topic("java-" + compression)
    java_client(["admin", "--bootstrap", bs, "create-topic", topic, "--partitions", "1"])
    produced = java_client(["produce", "--bootstrap", bs, "--topic", topic, "--count", "300",
                            "--compression", compression, "--acks", "1"])
    consumed = java_client(["consume", "--bootstrap", bs, "--topic", topic, "--count", "300"])
    assert consumed["count"] == 300 and consumed["value_crc_sum"] == produced["value_crc_sum"]


def test_java_admin(kafka_broker: RunningBroker, java_client) -> None:
    bs = kafka_broker.bootstrap_servers
    topic = _topic("java-admin")
    assert java_client(["admin", "--bootstrap", bs, "create-topic", topic, "--partitions", "2"])["created"] is True
    assert topic in java_client(["admin", "--bootstrap", bs, "list-topics"])["topics"]
    assert java_client(["admin", "--bootstrap", bs, "delete-topic", topic])["deleted"] is True
    assert topic not in java_client(["admin", "--bootstrap", bs, "list-topics"])["topics"]


def test_kcat_produce_and_consume(kafka_broker: RunningBroker, kcat_client) -> None:
    """Debian's kcat links librdkafka 2.0.2, which is strict about default-valued tagged fields."""
    bs = kafka_broker.bootstrap_servers
    topic = _topic("kcat")
    lines = "".join(f"key{i}:value{i}\n" for i in range(50))
    kcat_client(["-b", bs, "-P", "-t", topic, "-K", ":", "-p", "0"], input=lines)
    out = kcat_client(["-b", bs, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k=%s@%o\n"])
    assert out.splitlines() == [f"key{i}=value{i}@{i}" for i in range(50)]
    listing = kcat_client(["-b", bs, "-L", "-t", topic])
    assert f'topic "{topic}" with 1 partitions' in listing


def test_java_classic_group_consumer_commits(kafka_broker: RunningBroker, java_client) -> None:
    bs = kafka_broker.bootstrap_servers
    topic = _topic("java-group")
    java_client(["admin", "--bootstrap", bs, "create-topic", topic, "--partitions", "3"])
    produced = java_client(["produce", "--bootstrap", bs, "--topic", topic, "--count", "300"])
    consumed = java_client(["consume", "--bootstrap", bs, "--topic", topic, "--count", "300", "--group", "jc",
                            "--from-beginning"])
    assert consumed["count"] == 300 and consumed["committed"] is True
    assert consumed["value_crc_sum"] == produced["value_crc_sum"]
    offsets = kafka_broker.broker.groups.offsets.get("jc")  # type: ignore[union-attr]
    assert sum(c.offset for c in offsets.values()) == 300


def test_java_kip848_consumer_group(kafka_broker: RunningBroker, java_client) -> None:
    """group.protocol=consumer: ConsumerGroupHeartbeat with server-side assignment (KIP-848)."""
    _, consumed = produce_then_consume(java_client, kafka_broker.bootstrap_servers, _topic("java-848"), 300,
                                       consume_args=("--group", "j848", "--from-beginning",
                                                     "--prop", "group.protocol=consumer"))
    assert consumed["committed"] is True
    broker = kafka_broker.broker
    assert broker is not None and "j848" in broker.consumer_groups.groups
    assert sum(c.offset for c in broker.groups.offsets.get("j848").values()) == 300


def test_kcat_transactional_producer(kafka_broker: RunningBroker, kcat_client) -> None:
    """kcat -X transactional.id=... produces its input in one transaction and commits it at the end."""
    bs = kafka_broker.bootstrap_servers
    topic = _topic("kcat-txn")
    kcat_client(["-b", bs, "-P", "-t", topic, "-p", "0", "-X", "transactional.id=kcat-txn"],
                input="".join(f"t{i}\n" for i in range(20)))
    committed = kcat_client(["-b", bs, "-C", "-t", topic, "-o", "beginning", "-e", "-X",
                             "isolation.level=read_committed", "-f", "%s@%o\n"])
    assert committed.splitlines() == [f"t{i}@{i}" for i in range(20)]
    partition = kafka_broker.broker.partition(topic, 0)
    assert partition.high_watermark == 21 and partition.last_stable_offset == 21  # the COMMIT marker is at 20


def test_java_transactions_commit_abort_and_fencing(kafka_broker: RunningBroker, java_client) -> None:
    """kafka-clients' transactional producer: commits are read_committed-visible, aborts are not, and a
    second producer with the same transactional.id fences the first (ProducerFencedException)."""
    from confluent_kafka import Consumer, TopicPartition

    bs = kafka_broker.bootstrap_servers
    topic = _topic("java-txn")
    java_client(["admin", "--bootstrap", bs, "create-topic", topic, "--partitions", "1"])
    r = java_client(["txn", "--bootstrap", bs, "--topic", topic, "--transactional-id", "java-txn",
                     "--plan", "commit:3,abort:2,commit:1", "--fence"])
    assert (r["commits"], r["aborts"], r["fenced"], r["fenced_by"]) == (2, 1, True, "ProducerFencedException")

    def read(isolation: str) -> list[bytes]:
        c = Consumer({"bootstrap.servers": bs, "group.id": f"java-txn-{isolation}", "isolation.level": isolation})
        c.assign([TopicPartition(topic, 0, 0)])
        got = [m.value() for m in c.consume(num_messages=20, timeout=5) if m.error() is None]
        c.close()
        return got

    assert read("read_committed") == [b"commit-0", b"commit-1", b"commit-2", b"commit-5"]
    assert read("read_uncommitted") == [b"commit-0", b"commit-1", b"commit-2", b"abort-3", b"abort-4", b"commit-5",
                                        b"zombie"]
