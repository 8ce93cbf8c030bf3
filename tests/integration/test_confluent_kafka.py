"""confluent-kafka (librdkafka) against pykbroker."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import COMPRESSIONS
from pykbroker.testing import RunningBroker


def create(bootstrap: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1, config=configs or {})]).values():
        future.result(timeout=10)


def produce(bootstrap: str, topic: str, messages: list[dict], **config: object) -> list:
    delivered: list = []
    producer = Producer({"bootstrap.servers": bootstrap, **config})

    def report(err: object, msg: object) -> None:
        delivered.append((err, msg))

    for m in messages:
        producer.produce(topic, on_delivery=report, **m)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert [err for err, _ in delivered if err is not None] == []
    return [msg for _, msg in delivered]


def consume(bootstrap: str, tps: list[TopicPartition], expected: int, timeout_s: float = 30, **config: object) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 100, **config})
    try:
        consumer.assign(tps)
        got: list = []
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.2):
                assert m.error() is None, m.error()
                got.append(m)
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("acks", ["1", "all"])
def test_round_trip(kafka_broker: RunningBroker, topic_name: str, compression: str, acks: str) -> None:
    bs = kafka_broker.bootstrap_servers
    create(bs, topic_name)
    messages = [{"key": b"key-%d" % i, "value": None if i % 50 == 7 else b"value-%d" % i,
                 "headers": [("h", b"x%d" % i), ("nullh", None)] if i % 3 == 0 else None,
                 "timestamp": 1_700_000_000_000 + i, "partition": 0} for i in range(200)]
    delivered = produce(bs, topic_name, messages, acks=acks, **{"compression.type": compression})
    assert sorted(m.offset() for m in delivered) == list(range(200))
    got = consume(bs, [TopicPartition(topic_name, 0, 0)], 200)
    assert [m.offset() for m in got] == list(range(200))
    for i, m in enumerate(got):
        assert m.key() == b"key-%d" % i
        assert m.value() == (None if i % 50 == 7 else b"value-%d" % i)
        assert m.timestamp()[1] == 1_700_000_000_000 + i
        assert m.headers() == ([("h", b"x%d" % i), ("nullh", None)] if i % 3 == 0 else None)


def test_large_value_and_many_ordered(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    create(bs, topic_name, configs={"max.message.bytes": str(2 * 1024 * 1024)})
    big = bytes(range(256)) * 4096
    produce(bs, topic_name, [{"value": big, "partition": 0}], **{"message.max.bytes": 2 * 1024 * 1024})
    produce(bs, topic_name, [{"value": b"%d" % i, "partition": 0} for i in range(10_000)],
            **{"linger.ms": 5})
    got = consume(bs, [TopicPartition(topic_name, 0, 0)], 10_001, timeout_s=60,
                  **{"fetch.message.max.bytes": 4 * 1024 * 1024})
    assert got[0].value() == big
    assert [int(m.value()) for m in got[1:]] == list(range(10_000))


def test_keyed_partitioning_and_idempotence(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    create(bs, topic_name, partitions=4)
    delivered = produce(bs, topic_name, [{"key": b"k%d" % i, "value": b"v"} for i in range(40)],
                        **{"enable.idempotence": True})
    chosen = {m.key(): m.partition() for m in delivered}
    assert len(set(chosen.values())) > 1
    got = consume(bs, [TopicPartition(topic_name, p, 0) for p in range(4)], 40)
    assert {m.key(): m.partition() for m in got} == chosen


def test_offsets_for_times_watermarks_and_seek(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    create(bs, topic_name)
    base = 1_800_000_000_000
    produce(bs, topic_name, [{"value": b"%d" % i, "timestamp": base + 10 * i, "partition": 0} for i in range(30)],
            **{"linger.ms": 50})
    consumer = Consumer({"bootstrap.servers": bs, "group.id": "unused", "enable.auto.commit": False})
    try:
        found = consumer.offsets_for_times([TopicPartition(topic_name, 0, base + 125)], timeout=10)
        assert found[0].offset == 13
        assert consumer.get_watermark_offsets(TopicPartition(topic_name, 0), timeout=10) == (0, 30)
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        deadline = time.monotonic() + 10
        first = None
        while first is None and time.monotonic() < deadline:
            first = consumer.poll(0.2)
        consumer.seek(TopicPartition(topic_name, 0, 21))
        m = None
        while (m is None or m.offset() < 21) and time.monotonic() < deadline:
            m = consumer.poll(0.2)
        assert m is not None and m.offset() == 21 and m.value() == b"21"
    finally:
        consumer.close()


def test_admin_and_errors(kafka_broker: RunningBroker, topic_name: str) -> None:
    bs = kafka_broker.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bs})
    create(bs, topic_name, partitions=2)
    md = admin.list_topics(timeout=10)
    assert len(md.topics[topic_name].partitions) == 2
    with pytest.raises(KafkaException, match="TOPIC_ALREADY_EXISTS"):
        create(bs, topic_name)
    with pytest.raises(KafkaException, match="INVALID_REPLICATION_FACTOR"):
        admin.create_topics([NewTopic(topic_name + "x", 1, 3)])[topic_name + "x"].result(10)
    with pytest.raises(KafkaException, match="INVALID_CONFIG"):
        admin.create_topics([NewTopic(topic_name + "y", 1, 1, config={"retention.ms": "soon"})])[topic_name + "y"].result(10)
    admin.delete_topics([topic_name])[topic_name].result(10)
    assert topic_name not in admin.list_topics(timeout=10).topics


def test_waiting_consumer_gets_a_new_record_long_before_fetch_wait_max(kafka_broker: RunningBroker, topic_name: str) -> None:
    """Fetch long-polls are woken by the append, not by the end of fetch.wait.max.ms."""
    bs = kafka_broker.bootstrap_servers
    create(bs, topic_name)
    consumer = Consumer({"bootstrap.servers": bs, "group.id": "unused", "fetch.wait.max.ms": 500,
                         "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bs, "linger.ms": 0})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        consumer.poll(1.0)  # connected, and now parked in a long-poll fetch
        delays = []
        for i in range(5):
            sent = time.monotonic()
            producer.produce(topic_name, value=b"%d" % i, partition=0)
            producer.flush(5)
            m = None
            while m is None and time.monotonic() - sent < 5:
                m = consumer.poll(0.01)
            assert m is not None and m.value() == b"%d" % i
            delays.append(time.monotonic() - sent)
        assert sorted(delays)[2] < 0.2, delays  # median far below the 500 ms wait
    finally:
        consumer.close()
