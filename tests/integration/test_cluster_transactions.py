"""Transactions on a 3-broker cluster: __transaction_state is replicated and its partition's leader is
the transaction coordinator; markers reach partitions led by other brokers (WriteTxnMarkers), those
leaders ask the coordinator whether a partition is in the transaction (AddPartitionsToTxn
verify_only), and a transactional producer keeps working when its coordinator is SIGKILLed.

Run: nice -n 10 .venv/bin/python -m pytest -m cluster tests/integration/test_cluster_transactions.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from cluster import LocalCluster, local_cluster, wait_for
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from pykbroker.tools.zookeeper import RunningZooKeeper

pytestmark = pytest.mark.cluster
PARTITIONS = 3


@pytest.fixture
def cluster(zookeeper: RunningZooKeeper, tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(zookeeper, tmp_path, 3, min_insync_replicas="2") as c:
        yield c


def transactional_producer(bootstrap: str, txn_id: str) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 60000,
                  "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    p.init_transactions(60)
    return p


def send(p: Producer, topic: str, values: range, commit: bool = True) -> None:
    p.begin_transaction()
    for v in values:
        p.produce(topic, str(v).encode(), partition=v % PARTITIONS)
    p.flush(60)
    end(p, commit)


def end(p: Producer, commit: bool) -> None:
    """commit/abort, retried while librdkafka calls the error retriable (a coordinator moving)."""
    for _ in range(30):
        try:
            (p.commit_transaction if commit else p.abort_transaction)(60)
            return
        except KafkaException as e:
            if not e.args[0].retriable():
                raise
    raise AssertionError("the transaction never ended")


def read_committed(bootstrap: str, topic: str, count: int, timeout_s: float = 60) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "isolation.level": "read_committed",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    out: list[int] = []
    try:
        def enough() -> bool:
            for m in c.consume(100, 0.5):
                if m.error() is None:
                    out.append(int(m.value()))
            return len(out) >= count
        wait_for(f"{count} committed records of {topic}", enough, timeout_s)
        for m in c.consume(100, 1.0):  # nothing more arrives: no aborted record, no duplicate
            if m.error() is None:
                out.append(int(m.value()))
    finally:
        c.close()
    return sorted(out)


def test_transactions_across_partitions_led_by_different_brokers(cluster: LocalCluster) -> None:
    cluster.create_topic("tx", partitions=PARTITIONS, replication=3)
    leaders = {cluster.partition_state(1, "tx", p)[0] for p in range(PARTITIONS)}
    assert len(leaders) > 1  # the markers have to cross brokers
    p = transactional_producer(cluster.bootstrap, "t-across")
    send(p, "tx", range(0, 30))
    send(p, "tx", range(100, 130), commit=False)
    send(p, "tx", range(30, 60))
    # The last transaction is readable on every partition only once the abort before it is marked
    # on every partition (the last stable offset stops at an open transaction).
    assert read_committed(cluster.bootstrap, "tx", 60) == list(range(60))
    coordinator = cluster.transaction_coordinator("t-across")
    elsewhere = next(b.bootstrap for i, b in cluster.brokers.items() if i != coordinator)

    def cli(*args: str) -> list[list[str]]:
        """`pykbroker transactions ...` bootstrapped from a broker that does not coordinate the id."""
        done = subprocess.run([sys.executable, "-m", "pykbroker", "transactions", *args, "--bootstrap", elsewhere],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [line.split() for line in done.stdout.splitlines()[1:]]
    assert ["t-across", str(coordinator)] in [row[:2] for row in cli("list")]  # every broker is asked
    assert cli("describe", "t-across")[0][3] == "CompleteCommit"  # asked of the coordinator


def test_a_transactional_producer_survives_its_coordinators_sigkill(cluster: LocalCluster) -> None:
    cluster.create_topic("txf", partitions=PARTITIONS, replication=3)
    p = transactional_producer(cluster.bootstrap, "t-failover")
    send(p, "txf", range(0, 10))
    coordinator = cluster.transaction_coordinator("t-failover")
    p.begin_transaction()
    for v in range(10, 20):
        p.produce("txf", str(v).encode(), partition=v % PARTITIONS)
    p.flush(60)  # the open transaction's records are on the ISR, its partitions in the replicated state
    cluster.kill(coordinator)
    end(p, commit=True)  # found on the new coordinator, which loaded the open transaction
    send(p, "txf", range(20, 30))
    survivors = ",".join(b.bootstrap for i, b in cluster.brokers.items() if i != coordinator)
    assert read_committed(survivors, "txf", 30) == list(range(30))
    assert cluster.transaction_coordinator("t-failover") != coordinator


def test_offsets_sent_to_a_transaction_become_the_groups_on_commit(cluster: LocalCluster) -> None:
    """Consume-transform-produce: TxnOffsetCommit reaches the group coordinator, which asks the
    transaction coordinator (another broker, as a rule) whether the offsets partition is in the
    transaction; the commit's marker on __consumer_offsets makes the offsets the group's."""
    cluster.create_topic("in", partitions=PARTITIONS, replication=3)
    cluster.create_topic("out", partitions=PARTITIONS, replication=3)
    feeder = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for v in range(30):
        feeder.produce("in", str(v).encode(), partition=v % PARTITIONS)
    assert feeder.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "ctp", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe(["in"])
    p = transactional_producer(cluster.bootstrap, "t-ctp")
    try:
        seen: list[int] = []

        def transform_some() -> bool:
            batch = [m for m in consumer.consume(30, 1.0) if m.error() is None]
            if batch:
                p.begin_transaction()
                for m in batch:
                    p.produce("out", str(int(m.value()) * 10).encode(), partition=m.partition())
                    seen.append(int(m.value()))
                p.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                              consumer.consumer_group_metadata(), 60)
                end(p, commit=True)
            return len(seen) >= 30
        wait_for("30 records transformed", transform_some, 90)
        committed = consumer.committed([TopicPartition("in", i) for i in range(PARTITIONS)], 30)
        assert sorted(tp.offset for tp in committed) == [10, 10, 10]
    finally:
        consumer.close()
    assert read_committed(cluster.bootstrap, "out", 30) == [v * 10 for v in range(30)]
