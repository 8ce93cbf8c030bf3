"""Faults on a 3-broker cluster (real ZooKeeper, `pykbroker serve` processes): leader SIGKILL during
acks=all idempotent produce, a SIGSTOPped follower, an isolated old leader, 2 of 3 brokers down.

Run: nice -n 10 .venv/bin/python -m pytest -m cluster tests/integration -q
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from cluster import LocalCluster, local_cluster, wait_for
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition
from test_cluster_replication import wire_produce

from pykbroker.protocol.errors import ErrorCode
from pykbroker.tools.zookeeper import RunningZooKeeper

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(zookeeper: RunningZooKeeper, tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(zookeeper, tmp_path, 3, min_insync_replicas="2") as c:
        yield c


def isr_of(cluster: LocalCluster, via: int, topic: str) -> list[int]:
    return cluster.partition_state(via, topic)[2]


def read_all(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=int(timeout_s * 1000))
    consumer.assign([TopicPartition(topic, 0)])
    out = []
    for m in consumer:
        out.append(m.value)
        if len(out) >= count:
            break
    consumer.close()
    return out


class Reader(threading.Thread):
    """A kafka-python consumer polling all along (through the failover), collecting values."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                      request_timeout_ms=10000, metadata_max_age_ms=1000)
        self.consumer.assign([TopicPartition(topic, 0)])
        self.values: list[bytes] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for records in self.consumer.poll(200).values():
                self.values.extend(r.value for r in records)
        self.consumer.close()


def test_leader_sigkill_during_acks_all_idempotent_produce_loses_no_acknowledged_record(
        cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.create_topic("fo", partitions=1, replication=3)
    leader, epoch, _ = cluster.partition_state(1, "fo")
    survivors = [i for i in cluster.brokers if i != leader]
    reader = Reader(",".join(cluster.brokers[i].bootstrap for i in survivors), "fo")
    reader.start()
    acked: dict[int, float] = {}  # value -> when acknowledged

    def delivered(err: object, msg: object) -> None:
        if err is None:
            acked[int(msg.value())] = time.monotonic()  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 2, "message.timeout.ms": 60000, "retry.backoff.ms": 50,
                         "topic.metadata.refresh.interval.ms": 1000})
    killed_at, first_after_kill = 0.0, 10**9
    for i in range(1500):
        producer.produce("fo", str(i).encode(), on_delivery=delivered)
        producer.poll(0)
        time.sleep(0.002)
        if i == 300:
            wait_for("acks before the kill", lambda: len(acked) >= 200)
            cluster.kill(leader)
            killed_at, first_after_kill = time.monotonic(), i + 1
    assert producer.flush(60) == 0
    # Only the new leader can acknowledge a record produced after the kill.
    first_after = min(t for v, t in acked.items() if v >= first_after_kill)
    new_leader, new_epoch, isr = cluster.partition_state(survivors[0], "fo")
    assert new_leader in survivors and new_epoch > epoch and leader not in isr

    values = [int(v) for v in read_all(cluster.brokers[new_leader].bootstrap, "fo", len(acked))]
    assert len(values) == len(set(values)), "a record was written twice"
    assert values == sorted(values), "order within the partition changed"
    assert set(acked) <= set(values), f"acknowledged records lost: {sorted(set(acked) - set(values))[:10]}"
    wait_for("the consumer to continue after the failover", lambda: set(acked) <= set(int(v) for v in reader.values))
    reader.done.set()
    reader.join(10)

    cluster.brokers[leader].start()  # the old leader comes back as a follower and catches up
    wait_for("the old leader to rejoin the ISR", lambda: isr_of(cluster, new_leader, "fo") == [1, 2, 3], 60)
    with capsys.disabled():
        print(f"\nfailover: leader {leader} SIGKILLed -> first acks=all ack from leader {new_leader} "
              f"after {first_after - killed_at:.2f} s ({len(acked)} records acknowledged)")


def test_sigstopped_follower_leaves_the_isr_and_rejoins_after_sigcont(cluster: LocalCluster) -> None:
    cluster.create_topic("st", partitions=1, replication=3)
    leader = cluster.wait_for_leader("st")
    follower, other = [i for i in cluster.brokers if i != leader]
    cluster.stop(follower)
    try:
        wait_for("the stopped follower to leave the ISR",
                 lambda: isr_of(cluster, leader, "st") == sorted([leader, other]), 20)
        for i in range(20):  # acks=all goes on with 2 of 3 (min.insync.replicas=2)
            assert wire_produce(cluster.brokers[leader].bootstrap, "st", -1, [b"during-%d" % i])[0] == ErrorCode.NONE
    finally:
        cluster.resume(follower)
    wait_for("the follower to rejoin the ISR", lambda: isr_of(cluster, leader, "st") == [1, 2, 3], 30)
    assert wire_produce(cluster.brokers[leader].bootstrap, "st", -1, [b"after"]) == (ErrorCode.NONE, 20)
    # The rejoined follower has everything: make it the only broker left, and read from it.
    cluster.kill(leader)
    cluster.kill(other)
    wait_for("the follower to lead", lambda: cluster.partition_state(follower, "st")[0] == follower, 30)
    assert read_all(cluster.brokers[follower].bootstrap, "st", 21) == [b"during-%d" % i for i in range(20)] + [b"after"]


def test_two_of_three_down_acks_all_gets_not_enough_replicas_and_acks_1_works(cluster: LocalCluster) -> None:
    cluster.create_topic("nr", partitions=1, replication=3)
    leader = cluster.wait_for_leader("nr")
    for f in (i for i in cluster.brokers if i != leader):
        cluster.kill(f)
    wait_for("the ISR to shrink to the leader", lambda: isr_of(cluster, leader, "nr") == [leader], 20)
    bootstrap = cluster.brokers[leader].bootstrap
    assert wire_produce(bootstrap, "nr", -1, [b"x"])[0] == ErrorCode.NOT_ENOUGH_REPLICAS
    assert wire_produce(bootstrap, "nr", 1, [b"y"]) == (ErrorCode.NONE, 0)


def test_an_isolated_old_leader_cannot_acknowledge_and_truncates_its_unreplicated_tail(
        zookeeper: RunningZooKeeper, tmp_path: Path) -> None:
    # Followers long-poll for 100 ms only, so that once paused they have no fetch waiting at the leader
    # (a response to one would sit in their socket and replicate the tail when they resume).
    with local_cluster(zookeeper, tmp_path, 3, min_insync_replicas="2", replica_fetch_wait_max_ms="100") as c:
        _isolated_old_leader(c)


def _isolated_old_leader(cluster: LocalCluster) -> None:
    cluster.create_topic("iso", partitions=1, replication=3)
    old = cluster.wait_for_leader("iso")
    epoch = cluster.partition_state(1, "iso")[1]
    followers = [i for i in cluster.brokers if i != old]
    assert wire_produce(cluster.brokers[old].bootstrap, "iso", -1, [b"committed"]) == (ErrorCode.NONE, 0)
    for f in followers:  # the followers pause, so that the next record reaches the leader only
        cluster.stop(f)
    time.sleep(0.4)  # their last fetches have been answered (empty) by now
    try:
        assert wire_produce(cluster.brokers[old].bootstrap, "iso", 1, [b"unreplicated-tail"]) == (ErrorCode.NONE, 1)
        cluster.stop(old)
    finally:
        for f in followers:
            cluster.resume(f)
    try:
        new = wait_for("a new leader", lambda: (s := cluster.partition_state(followers[0], "iso"))[0] in followers
                       and s[0], 30)
        assert isinstance(new, int)
        wait_for("the new leader to know it", lambda: cluster.partition_state(new, "iso")[0] == new)
        assert wire_produce(cluster.brokers[new].bootstrap, "iso", -1, [b"new-leader"]) == (ErrorCode.NONE, 1)
    finally:
        cluster.resume(old)
    # Right after waking up, the old leader must not acknowledge an acks=all write.
    code, _ = wire_produce(cluster.brokers[old].bootstrap, "iso", -1, [b"stale"], timeout_ms=3000)
    assert code in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.REQUEST_TIMED_OUT,
                    ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND)
    wait_for("the old leader to rejoin as follower", lambda: isr_of(cluster, new, "iso") == [1, 2, 3], 30)
    _, new_epoch, _ = cluster.partition_state(new, "iso")
    assert new_epoch > epoch
    # The old leader's copy now matches the new leader's: its tail was truncated, not served.
    others = [i for i in cluster.brokers if i != old]
    for i in others:
        cluster.kill(i)
    wait_for("the old leader to lead again", lambda: cluster.partition_state(old, "iso")[0] == old, 30)
    assert read_all(cluster.brokers[old].bootstrap, "iso", 2) == [b"committed", b"new-leader"]


def test_sigterm_hands_leadership_to_an_in_sync_replica_before_exit(cluster: LocalCluster) -> None:
    cluster.create_topic("cs", partitions=3, replication=3)
    leader = cluster.wait_for_leader("cs")
    epoch = cluster.partition_state(1, "cs")[1]
    led = sum(p.leader_id == leader for p in cluster.metadata(1, "cs").topics[0].partitions)  # type: ignore[attr-defined]
    assert wire_produce(cluster.brokers[leader].bootstrap, "cs", -1, [b"before"]) == (ErrorCode.NONE, 0)
    proc = cluster.brokers[leader].proc
    assert proc is not None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    log = cluster.brokers[leader].stderr.name
    with open(log) as f:
        assert f"controlled shutdown: handed {led} leadership(s)" in f.read()
    survivor = next(i for i in cluster.brokers if i != leader)
    new, new_epoch, isr = cluster.partition_state(survivor, "cs")
    assert new != leader and new_epoch == epoch + 1 and leader not in isr
    assert wire_produce(cluster.brokers[new].bootstrap, "cs", -1, [b"after"]) == (ErrorCode.NONE, 1)
    cluster.brokers[leader].start()
    wait_for("the restarted broker to rejoin the ISR", lambda: isr_of(cluster, new, "cs") == [1, 2, 3], 30)
