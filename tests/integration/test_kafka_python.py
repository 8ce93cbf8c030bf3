"""kafka-python against pykbroker: produce, consume, offsets, admin."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from conftest import COMPRESSIONS
from pykbroker.testing import RunningBroker


def create(bootstrap: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
    finally:
        admin.close()


def consume_all(bootstrap: str, tps: list[TopicPartition], expected: int, timeout_s: float = 20) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got: list = []
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(records)
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("acks", [1, "all"])
def test_round_trip(kafka_broker: RunningBroker, topic_name: str, compression: str, acks: object) -> None:
    bs = kafka_broker.bootstrap_servers
    create(bs, topic_name)
    producer = KafkaProducer(bootstrap_servers=bs, acks=acks,
                             compression_type=None if compression == "none" else compression)
    sent = []
    for i in range(200):
        headers = [("h", b"x%d" % i), ("empty", b"")] if i % 3 == 0 else []
        value = None if i % 50 == 7 else b"value-%d" % i
        sent.append(producer.send(topic_name, key=b"key-%d" % i, value=value, headers=headers,
                                  timestamp_ms=1_700_000_000_000 + i))
    producer.flush()
    metas = [f.get(timeout=10) for f in sent]
    assert [m.offset for m in metas] == list(range(200))
    producer.close()
    got = consume_all(bs, [TopicPartition(topic_name, 0)], 200)
    assert [m.offset for m in got] == list(range(200))
    for i, m in enumerate(got):
        assert m.key == b"key-%d" % i
        assert m.value == (None if i % 50 == 7 else b"value-%d" % i)
        assert m.timestamp == 1_700_000_000_000 + i
        assert m.headers == ([("h", b"x%d" % i), ("empty", b"")] if i % 3 == 0 else [])


def test_large_value_and_many_ordered(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    # A 1 MiB value plus batch overhead exceeds Kafka's default max.message.bytes (1048588).
    create(bs, topic_name, configs={"max.message.bytes": str(2 * 1024 * 1024)})
    producer = KafkaProducer(bootstrap_servers=bs, acks="all", max_request_size=2 * 1024 * 1024,
                             linger_ms=5, batch_size=256 * 1024)
    big = bytes(range(256)) * 4096  # 1 MiB
    producer.send(topic_name, value=big).get(timeout=10)
    for i in range(10_000):
        producer.send(topic_name, value=b"%d" % i)
    producer.flush()
    producer.close()
    got = consume_all(bs, [TopicPartition(topic_name, 0)], 10_001, timeout_s=60)
    assert got[0].value == big
    assert [int(m.value) for m in got[1:]] == list(range(10_000))
    assert [m.offset for m in got] == list(range(10_001))


def test_keyed_messages_land_on_the_partition_the_client_chose(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    create(bs, topic_name, partitions=4)
    producer = KafkaProducer(bootstrap_servers=bs)
    chosen = {}
    for i in range(40):
        meta = producer.send(topic_name, key=b"k%d" % i, value=b"v").get(timeout=10)
        chosen[b"k%d" % i] = meta.partition
    producer.close()
    assert len(set(chosen.values())) > 1
    got = consume_all(bs, [TopicPartition(topic_name, p) for p in range(4)], 40)
    assert {m.key: m.partition for m in got} == chosen


def test_offsets_for_times_and_seek(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    create(bs, topic_name)
    producer = KafkaProducer(bootstrap_servers=bs, linger_ms=50)
    base = 1_800_000_000_000
    for i in range(30):  # several records per batch: the answer is a record, not a batch start
        producer.send(topic_name, value=b"%d" % i, timestamp_ms=base + i * 10)
    producer.flush()
    producer.close()
    tp = TopicPartition(topic_name, 0)
    consumer = KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False)
    try:
        found = consumer.offsets_for_times({tp: base + 125})
        assert found[tp].offset == 13 and found[tp].timestamp == base + 130
        assert consumer.offsets_for_times({tp: base + 10_000})[tp] is None
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: 30}
        consumer.assign([tp])
        consumer.seek(tp, 17)
        records = []
        deadline = time.monotonic() + 10
        while not records and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        assert records[0].offset == 17 and records[0].value == b"17"
    finally:
        consumer.close()


def test_admin_create_describe_delete(kafka_broker: RunningBroker, topic_name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic_name, 3, 1, topic_configs={"retention.ms": "60000"})])
        assert topic_name in admin.list_topics()
        described = admin.describe_topics([topic_name])
        assert len(described[0]["partitions"]) == 3
        with pytest.raises(Exception, match="TopicAlreadyExists"):
            admin.create_topics([NewTopic(topic_name, 1, 1)])
        admin.delete_topics([topic_name])
        assert topic_name not in admin.list_topics()
    finally:
        admin.close()


@pytest.mark.parametrize("api_version", [(0, 10, 0), (0, 10, 2), (0, 11)])
def test_old_protocol_versions_and_message_formats(kafka_broker: RunningBroker, topic_name: str,
                                                   api_version: tuple[int, ...]) -> None:
    """Produce v2 / Fetch v2-v3 carry magic 0/1 message sets: up-converted on produce, down-converted on fetch."""
    bs = kafka_broker.bootstrap_servers
    create(bs, topic_name)
    producer = KafkaProducer(bootstrap_servers=bs, api_version=api_version, compression_type="gzip")
    for i in range(20):
        producer.send(topic_name, key=b"k%d" % i, value=b"v%d" % i)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bs, api_version=api_version, consumer_timeout_ms=3000,
                             enable_auto_commit=False)
    consumer.assign([TopicPartition(topic_name, 0)])
    consumer.seek_to_beginning()
    got = [(m.offset, m.key, m.value) for m in consumer]
    consumer.close()
    assert got == [(i, b"k%d" % i, b"v%d" % i) for i in range(20)]
