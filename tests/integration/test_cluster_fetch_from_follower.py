"""KIP-392 fetch from the closest replica on a 3-broker cluster, one rack per broker
(replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector): the leader sends a
consumer of another rack to the in-sync replica of its rack, followers serve consumer fetches (v11+)
up to their high watermark, and confluent-kafka and kafka-python consumers with client.rack read there.

Run: nice -n 10 .venv/bin/python -m pytest -m cluster tests/integration/test_cluster_fetch_from_follower.py -q
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from cluster import LocalCluster, local_cluster, wait_for
from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as CkTopicPartition
from kafka import KafkaConsumer, TopicPartition
from test_cluster_replication import wire_produce

from pykbroker.cluster.replica_selector import RACK_AWARE
from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.messages import API_KEYS
from pykbroker.tools.zookeeper import RunningZooKeeper
from pykbroker.wire_client import WireClient

pytestmark = pytest.mark.cluster
FETCH = API_KEYS["FETCH"]


@pytest.fixture
def cluster(zookeeper: RunningZooKeeper, tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(zookeeper, tmp_path, 3, broker_rack="rack-{id}", replica_selector_class=RACK_AWARE) as c:
        yield c


def fetch(cluster: LocalCluster, via: int, topic: str, version: int, rack: str = "") -> Any:
    client = WireClient(cluster.brokers[via].bootstrap)
    try:
        r = client.request(FETCH, version, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "rack_id": rack,
                                            "topics": [{"topic": topic, "partitions": [
                                                {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1 << 20}]}]})
    finally:
        client.close()
    return r.responses[0].partitions[0]


def test_leader_points_consumers_to_their_rack_and_followers_serve_them(cluster: LocalCluster) -> None:
    cluster.create_topic("ffr", partitions=1, replication=3)
    leader = cluster.wait_for_leader("ffr")
    assert cluster.partition_state(1, "ffr")[2] == [1, 2, 3]
    follower = next(i for i in cluster.brokers if i != leader)
    assert wire_produce(cluster.brokers[leader].bootstrap, "ffr", -1, [b"r0", b"r1", b"r2"]) == (ErrorCode.NONE, 0)
    md = cluster.metadata(1, "ffr")
    assert {b.node_id: b.rack for b in md.brokers} == {i: f"rack-{i}" for i in (1, 2, 3)}  # type: ignore[attr-defined]

    away = fetch(cluster, leader, "ffr", 12, rack=f"rack-{follower}")
    assert (away.error_code, away.preferred_read_replica, away.high_watermark) == (ErrorCode.NONE, follower, 3)
    assert not away.records  # no read at the leader: the consumer goes to its replica
    here = fetch(cluster, leader, "ffr", 12, rack=f"rack-{leader}")
    assert here.preferred_read_replica == -1 and b"r2" in bytes(here.records)
    for rack in ("", "rack-elsewhere"):
        assert fetch(cluster, leader, "ffr", 12, rack=rack).preferred_read_replica == -1

    served = wait_for("the follower's high watermark to reach 3", lambda: (r := fetch(
        cluster, follower, "ffr", 12, rack=f"rack-{follower}")).high_watermark == 3 and r)
    assert served.error_code == ErrorCode.NONE and b"r2" in bytes(served.records)  # type: ignore[attr-defined]
    assert fetch(cluster, follower, "ffr", 10).error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER  # v10: leader only

    # confluent-kafka with client.rack: its statistics say which broker it fetches from
    fetching_from: list[int] = []
    consumer = Consumer({"bootstrap.servers": cluster.brokers[leader].bootstrap, "group.id": "ffr-ck",
                         "client.rack": f"rack-{follower}", "auto.offset.reset": "earliest",
                         "statistics.interval.ms": 200,
                         "stats_cb": lambda s: fetching_from.append(
                             json.loads(s)["topics"].get("ffr", {}).get("partitions", {}).get("0", {}).get("broker", -1))})
    try:
        consumer.assign([CkTopicPartition("ffr", 0, 0)])
        values: list[bytes] = []
        wait_for("confluent-kafka to read 3 records", lambda: (m := consumer.poll(0.2)) is not None and m.error() is None
                 and values.append(m.value()) is None and len(values) == 3, 30)
        assert values == [b"r0", b"r1", b"r2"]
        wait_for("confluent-kafka to fetch from the follower", lambda: consumer.poll(0.2) is None and
                 fetching_from and fetching_from[-1] == follower, 15)
    finally:
        consumer.close()

    # kafka-python with client_rack
    kp = KafkaConsumer(bootstrap_servers=cluster.brokers[leader].bootstrap, client_rack=f"rack-{follower}",
                       auto_offset_reset="earliest", consumer_timeout_ms=10000)
    try:
        kp.assign([TopicPartition("ffr", 0)])
        assert [m.value for _, m in zip(range(3), kp)] == [b"r0", b"r1", b"r2"]
    finally:
        kp.close()
