"""Durability: what was acknowledged is there after a restart; a torn tail is cut at the last whole batch."""

from __future__ import annotations

import time
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from pykbroker.testing import running_broker


def read_all(bootstrap: str, topic: str, expected: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got: list = []
    deadline = time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(records)
    end = consumer.end_offsets([tp])[tp]
    consumer.close()
    return got + [end]


def test_restart_keeps_every_record_at_the_same_offset(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_broker(data_dir=data) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        admin.create_topics([NewTopic("durable", 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5)
        for i in range(10_000):
            producer.send("durable", value=b"%d" % i)
        producer.flush()
        producer.close()
        cluster_id = broker.broker.cluster_id if broker.broker else None
    with running_broker(data_dir=data) as broker:
        assert broker.broker is not None and broker.broker.cluster_id == cluster_id
        *got, end = read_all(broker.bootstrap_servers, "durable", 10_000)
        assert end == 10_000
        assert [(m.offset, m.value) for m in got] == [(i, b"%d" % i) for i in range(10_000)]
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        assert producer.send("durable", value=b"after").get(timeout=10).offset == 10_000
        producer.close()


def test_truncated_last_segment_is_recovered_to_the_last_whole_batch(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_broker(data_dir=data) as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        admin.create_topics([NewTopic("torn", 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        for i in range(50):  # one batch per send: wait for each
            producer.send("torn", value=b"%03d" % i).get(timeout=10)
        producer.close()
    segment = next((data / "torn-0").glob("*.log"))
    size = segment.stat().st_size
    with segment.open("r+b") as f:
        f.truncate(size - 10)  # cut into the last batch, as a crash mid-write would
    with running_broker(data_dir=data) as broker:
        *got, end = read_all(broker.bootstrap_servers, "torn", 49)
        assert end == 49
        assert [m.value for m in got] == [b"%03d" % i for i in range(49)]
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        assert producer.send("torn", value=b"new").get(timeout=10).offset == 49
        producer.close()
