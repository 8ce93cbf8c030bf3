"""A whole-cluster restart (3 brokers, RF 3): every record acknowledged with acks=all before all
brokers stopped (SIGTERM, or SIGKILL) is there after they start again on the same data dirs,
exactly once and in order; leaders are elected again and the high watermark checkpoint is read."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import pytest
from cluster import LocalCluster, local_cluster, wait_for
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition

from pykbroker.cluster.hw_checkpoint import read_checkpoint
from pykbroker.tools.zookeeper import RunningZooKeeper

pytestmark = pytest.mark.cluster

PARTITIONS = 3


@pytest.fixture
def cluster(zookeeper: RunningZooKeeper, tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(zookeeper, tmp_path, 3, min_insync_replicas="2",
                       replica_high_watermark_checkpoint_interval_ms="500") as c:
        yield c


def consume_all(bootstrap: str, topic: str, count: int) -> dict[int, list[int]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=15000)
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    out: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    seen = 0
    for m in consumer:
        out[m.partition].append(int(m.value))
        seen += 1
        if seen >= count:
            break
    consumer.close()
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_whole_cluster_restart_keeps_every_acknowledged_record_once_in_order(
        cluster: LocalCluster, sig: signal.Signals) -> None:
    cluster.create_topic("wr", partitions=PARTITIONS, replication=3)
    acked: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}

    def delivered(err: object, msg: object) -> None:
        if err is None:
            acked[msg.partition()].append(int(msg.value()))  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 2, "message.timeout.ms": 30000})
    for i in range(900):
        producer.produce("wr", str(i).encode(), partition=i % PARTITIONS, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert sum(map(len, acked.values())) == 900
    for b in cluster.brokers.values():
        assert b.proc is not None
        b.proc.send_signal(sig)
    for b in cluster.brokers.values():
        assert b.proc is not None
        b.proc.wait(30)
    if sig == signal.SIGTERM:  # written at shutdown; a follower's high watermark may lag its leader's
        for b in cluster.brokers.values():
            checkpoint = read_checkpoint(b.data_dir)
            assert all(0 <= checkpoint[("wr", p)] <= 300 for p in range(PARTITIONS)), checkpoint

    cluster.start_all()
    for p in range(PARTITIONS):
        wait_for(f"a leader for wr-{p} with the full ISR",
                 lambda: (lambda s: s[0] in cluster.brokers and s[2] == [1, 2, 3])(cluster.partition_state(1, "wr", p)),
                 60)
    got = consume_all(cluster.bootstrap, "wr", 900)
    for p in range(PARTITIONS):
        assert got[p] == acked[p], f"wr-{p}: lost, duplicated or reordered records after the restart"
