"""A real ZooKeeper and 3 `pykbroker serve` processes: replication factor 3, min.insync.replicas=2,
clients bootstrapping from any broker, NOT_LEADER_OR_FOLLOWER from followers (Fetch v0-10, Produce).

Run: nice -n 10 .venv/bin/python -m pytest -m cluster tests/integration -q
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from cluster import LocalCluster, local_cluster, wait_for
from confluent_kafka import Consumer, Producer
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.messages import API_KEYS
from pykbroker.protocol.records import Record, build_batch
from pykbroker.tools.zookeeper import RunningZooKeeper
from pykbroker.wire_client import WireClient

pytestmark = pytest.mark.cluster

PRODUCE, FETCH = API_KEYS["PRODUCE"], API_KEYS["FETCH"]


@pytest.fixture
def cluster(zookeeper: RunningZooKeeper, tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(zookeeper, tmp_path, 3, min_insync_replicas="2") as c:
        yield c


def wire_produce(bootstrap: str, topic: str, acks: int, values: list[bytes], timeout_ms: int = 5000) -> tuple[int, int]:
    """(error code, base offset) of one Produce v9 for partition 0."""
    batch = build_batch([Record(i, 0, None, v, []) for i, v in enumerate(values)])
    client = WireClient(bootstrap)
    try:
        r = client.request(PRODUCE, 9, {"transactional_id": None, "acks": acks, "timeout_ms": timeout_ms,
                                        "topic_data": [{"name": topic, "partition_data": [
                                            {"index": 0, "records": batch}]}]})
    finally:
        client.close()
    p = r.responses[0].partition_responses[0]
    return p.error_code, p.base_offset


def test_rf3_topic_every_broker_reports_the_same_replicas_leader_and_isr(cluster: LocalCluster) -> None:
    cluster.create_topic("rf3", partitions=3, replication=3)
    views = []
    for broker_id in cluster.brokers:
        md = cluster.metadata(broker_id, "rf3")
        assert sorted(b.node_id for b in md.brokers) == [1, 2, 3]  # type: ignore[attr-defined]
        assert md.controller_id in (1, 2, 3)  # type: ignore[attr-defined]
        parts = sorted(md.topics[0].partitions, key=lambda p: p.partition_index)  # type: ignore[attr-defined]
        views.append([(p.leader_id, p.leader_epoch, sorted(p.replica_nodes), sorted(p.isr_nodes)) for p in parts])
    assert views[0] == views[1] == views[2]
    assert all(replicas == [1, 2, 3] and isr == [1, 2, 3] and epoch == 0 for _, epoch, replicas, isr in views[0])
    assert sorted(leader for leader, *_ in views[0]) == [1, 2, 3]  # leaders spread over the brokers


def test_followers_answer_not_leader_or_follower(cluster: LocalCluster) -> None:
    cluster.create_topic("nl", partitions=1, replication=3)
    leader, _, _ = cluster.partition_state(1, "nl")
    follower = next(i for i in cluster.brokers if i != leader)
    code, _ = wire_produce(cluster.brokers[follower].bootstrap, "nl", 1, [b"x"])
    assert code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    client = WireClient(cluster.brokers[follower].bootstrap)
    # Fetch v10 and older: consumers read from the leader only (v11+ may read from followers, KIP-392)
    r = client.request(FETCH, 10, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "topics": [
        {"topic": "nl", "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    client.close()
    assert r.responses[0].partitions[0].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
    # The leader named by broker 1 may not have applied its own role yet (each broker watches ZooKeeper).
    wait_for("the leader to accept an acks=all produce",
             lambda: wire_produce(cluster.brokers[leader].bootstrap, "nl", -1, [b"y"])[0] == ErrorCode.NONE, 10)


def test_kafka_python_and_confluent_kafka_bootstrap_from_any_broker(cluster: LocalCluster) -> None:
    cluster.create_topic("clients", partitions=2, replication=3)
    kp = KafkaProducer(bootstrap_servers=cluster.brokers[1].bootstrap, acks="all")
    for i in range(50):
        kp.send("clients", f"kp-{i}".encode(), partition=i % 2)
    kp.flush(30)
    kp.close()
    cp = Producer({"bootstrap.servers": cluster.brokers[3].bootstrap, "acks": "all", "enable.idempotence": True})
    for i in range(50):
        cp.produce("clients", f"ck-{i}".encode(), partition=i % 2)
    assert cp.flush(30) == 0

    expected = {0: [f"kp-{i}" for i in range(0, 50, 2)] + [f"ck-{i}" for i in range(0, 50, 2)],
                1: [f"kp-{i}" for i in range(1, 50, 2)] + [f"ck-{i}" for i in range(1, 50, 2)]}
    kc = KafkaConsumer(bootstrap_servers=cluster.brokers[2].bootstrap, auto_offset_reset="earliest",
                       consumer_timeout_ms=10000)
    kc.assign([TopicPartition("clients", 0), TopicPartition("clients", 1)])
    got: dict[int, list[str]] = {0: [], 1: []}
    for m in kc:
        got[m.partition].append(m.value.decode())
        if sum(map(len, got.values())) == 100:
            break
    kc.close()
    assert got == expected, {p: (len(v), v[-3:]) for p, v in got.items()}

    cc = Consumer({"bootstrap.servers": cluster.brokers[2].bootstrap, "group.id": "g-clients",
                   "auto.offset.reset": "earliest", "enable.auto.commit": False})
    cc.subscribe(["clients"])
    seen: dict[int, list[str]] = {0: [], 1: []}
    wait_for("confluent-kafka to read 100 records",
             lambda: _poll_into(cc, seen) or sum(map(len, seen.values())) == 100, timeout_s=30, interval_s=0)
    cc.close()
    assert seen == expected


def _poll_into(consumer: Consumer, seen: dict[int, list[str]]) -> None:
    m = consumer.poll(0.5)
    if m is not None and m.error() is None:
        seen[m.partition()].append(m.value().decode())


def test_consumers_never_see_above_the_high_watermark(cluster: LocalCluster) -> None:
    """With both followers stopped, an acks=1 write is on the leader only: not readable until replicated."""
    cluster.create_topic("hw", partitions=1, replication=3)
    leader = cluster.wait_for_leader("hw")
    assert wire_produce(cluster.brokers[leader].bootstrap, "hw", -1, [b"committed-value"]) == (ErrorCode.NONE, 0)
    followers = [i for i in cluster.brokers if i != leader]
    for f in followers:
        cluster.stop(f)
    try:
        assert wire_produce(cluster.brokers[leader].bootstrap, "hw", 1, [b"not-yet-replicated"]) == (ErrorCode.NONE, 1)
        client = WireClient(cluster.brokers[leader].bootstrap)
        r = client.request(FETCH, 12, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "topics": [
            {"topic": "hw", "partitions": [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
        client.close()
        p = r.responses[0].partitions[0]
        assert p.high_watermark == 1
        records = bytes(p.records)
        assert b"committed-value" in records and b"not-yet-replicated" not in records
    finally:
        for f in followers:
            cluster.resume(f)


def test_every_broker_reports_the_one_cluster_id_that_zookeeper_holds(cluster: LocalCluster) -> None:
    """Kafka's /cluster/id: the first broker writes it, the others adopt it (and keep it in their
    meta.properties); a broker whose data belongs to another cluster refuses to start."""
    ids = {cluster.metadata(i, "").cluster_id for i in cluster.brokers}  # type: ignore[attr-defined]
    assert len(ids) == 1 and ids != {None}
    (cluster_id,) = ids
    for b in cluster.brokers.values():
        assert f"cluster.id={cluster_id}\n" in (b.data_dir / "meta.properties").read_text()
    stranger = cluster.brokers[3]
    stranger.kill()
    meta = stranger.data_dir / "meta.properties"
    meta.write_text(meta.read_text().replace(cluster_id, "another-cluster-id"))
    with pytest.raises(RuntimeError, match="did not start"):
        stranger.start(timeout_s=20)
    assert "ZooKeeper's /cluster/id is " + cluster_id in Path(stranger.stderr.name).read_text()
