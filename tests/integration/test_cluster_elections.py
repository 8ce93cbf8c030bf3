"""Leader elections on a 3-broker cluster (real ZooKeeper, `pykbroker serve` processes): automatic
preferred-leader rebalance, the ElectLeaders API (PREFERRED and UNCLEAN, from kafka-python and
confluent-kafka), and unclean.leader.election.enable.

Run: nice -n 10 .venv/bin/python -m pytest -m cluster tests/integration/test_cluster_elections.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster import LocalCluster, local_cluster, wait_for
from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from test_cluster_replication import wire_produce

from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.messages import API_KEYS
from pykbroker.tools.zookeeper import RunningZooKeeper
from pykbroker.wire_client import WireClient

pytestmark = pytest.mark.cluster


def replicas_of(cluster: LocalCluster, via: int, topic: str, partition: int = 0) -> list[int]:
    md = cluster.metadata(via, topic)
    return list(next(p for p in md.topics[0].partitions if p.partition_index == partition).replica_nodes)  # type: ignore[attr-defined]


def move_leadership_away(cluster: LocalCluster, topic: str) -> tuple[int, int]:
    """Kill the preferred leader and start it again: another replica leads, the preferred one is
    back in the ISR. Returns (preferred, survivor)."""
    via = next(iter(cluster.brokers))
    preferred = replicas_of(cluster, via, topic)[0]
    wait_for("the preferred replica to lead", lambda: cluster.partition_state(via, topic)[0] == preferred)
    cluster.kill(preferred)
    survivor = next(i for i in cluster.brokers if i != preferred)
    wait_for("another leader", lambda: cluster.partition_state(survivor, topic)[0] not in (preferred, -1))
    cluster.brokers[preferred].start()
    wait_for("the preferred replica back in the ISR",
             lambda: preferred in cluster.partition_state(survivor, topic)[2], 30)
    return preferred, survivor


def elect_wire(cluster: LocalCluster, via: int, election_type: int, partitions: list[tuple[str, int]] | None) -> dict:
    client = WireClient(cluster.brokers[via].bootstrap)
    try:
        topics = None if partitions is None else [{"topic": t, "partitions": [p]} for t, p in partitions]
        r = client.request(API_KEYS["ELECT_LEADERS"], 2, {"election_type": election_type, "topic_partitions": topics,
                                                           "timeout_ms": 20000})
    finally:
        client.close()
    assert r.error_code == 0
    return {(t.topic, p.partition_id): p.error_code for t in r.replica_election_results for p in t.partition_result}


def test_auto_rebalance_moves_leadership_back_to_the_preferred_replica(zookeeper: RunningZooKeeper, tmp_path: Path) -> None:
    with local_cluster(zookeeper, tmp_path, 3, leader_imbalance_check_interval_seconds="1") as cluster:
        cluster.create_topic("rb", partitions=1, replication=3)
        preferred, survivor = move_leadership_away(cluster, "rb")
        wait_for("the preferred replica to lead again", lambda: cluster.partition_state(survivor, "rb")[0] == preferred, 30)
        assert cluster.wait_for_leader("rb", via=survivor) == preferred  # and to have applied its role
        assert wire_produce(cluster.brokers[preferred].bootstrap, "rb", -1, [b"x"])[0] == ErrorCode.NONE


def test_elect_leaders_api_preferred_and_its_errors(zookeeper: RunningZooKeeper, tmp_path: Path) -> None:
    with local_cluster(zookeeper, tmp_path, 3, auto_leader_rebalance_enable="false") as cluster:
        cluster.create_topic("el", partitions=1, replication=3)
        preferred, survivor = move_leadership_away(cluster, "el")
        assert cluster.partition_state(survivor, "el")[0] != preferred  # no automatic rebalance
        controller = cluster.metadata(survivor, "el").controller_id  # type: ignore[attr-defined]
        other = next(i for i in cluster.brokers if i != controller)
        assert elect_wire(cluster, other, 0, [("el", 0)]) == {("el", 0): ErrorCode.NOT_CONTROLLER}
        assert elect_wire(cluster, controller, 0, [("el", 9), ("nope", 0)]) == {
            ("el", 9): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ("nope", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        # confluent-kafka sends it to the controller; the answer comes once the leader moved
        admin = AdminClient({"bootstrap.servers": cluster.brokers[other].bootstrap})
        result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("el", 0)]).result(30)
        assert result == {TopicPartition("el", 0): None}
        assert cluster.partition_state(controller, "el")[0] == preferred  # seen there when answered
        wait_for("every broker to see it", lambda: all(cluster.partition_state(b, "el")[0] == preferred
                                                       for b in cluster.brokers))
        # kafka-python: now not needed (and left out of an all-partitions answer)
        kp = KafkaAdminClient(bootstrap_servers=cluster.brokers[other].bootstrap)
        try:
            again = kp.elect_leaders(0, {"el": [0]}, raise_errors=False)
            assert [p.error_code for t in again.replica_election_results for p in t.partition_result] == \
                [ErrorCode.ELECTION_NOT_NEEDED]
        finally:
            kp.close()
        assert elect_wire(cluster, controller, 0, None) == {}
        cluster.kill(preferred)
        wait_for("another leader", lambda: cluster.partition_state(other if other != preferred else controller,
                                                                   "el")[0] not in (preferred, -1))
        live_controller = wait_for("a live controller", lambda: (c := cluster.metadata(
            next(b for b in cluster.brokers if b != preferred), "el").controller_id) != preferred and c > 0 and c)
        assert elect_wire(cluster, live_controller, 0, [("el", 0)]) == {
            ("el", 0): ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE}


def test_unclean_leader_election_by_topic_config_and_by_the_api(zookeeper: RunningZooKeeper, tmp_path: Path) -> None:
    with local_cluster(zookeeper, tmp_path, 3) as cluster:
        admin = KafkaAdminClient(bootstrap_servers=cluster.brokers[3].bootstrap, request_timeout_ms=30000)
        try:
            admin.create_topics([NewTopic(t, -1, -1, replica_assignments={0: [1, 2]},
                                          topic_configs={"unclean.leader.election.enable": u})
                                 for t, u in (("unclean", "true"), ("clean", "false"))], timeout_ms=20000)
            for topic in ("unclean", "clean"):
                wait_for("leader 1 with ISR [1, 2]", lambda: cluster.partition_state(3, topic)[::2] == (1, [1, 2]))
                assert wire_produce(cluster.brokers[1].bootstrap, topic, -1, [b"replicated"]) == (ErrorCode.NONE, 0)
            cluster.kill(2)
            for topic in ("unclean", "clean"):
                wait_for("the ISR to shrink to [1]", lambda: cluster.partition_state(3, topic)[2] == [1])
                assert wire_produce(cluster.brokers[1].bootstrap, topic, 1, [b"only-on-1"]) == (ErrorCode.NONE, 1)
            cluster.kill(1)
            for topic in ("unclean", "clean"):
                wait_for("the partition offline", lambda: cluster.partition_state(3, topic)[0] == -1)
            cluster.brokers[2].start()
            # unclean.leader.election.enable=true: 2, out of the ISR, leads; the unreplicated record is lost
            leader, _, isr = wait_for("2 to lead 'unclean'", lambda: (s := cluster.partition_state(3, "unclean"))[0] == 2 and s)
            assert isr == [2]
            assert wire_produce(cluster.brokers[2].bootstrap, "unclean", -1, [b"after"]) == (ErrorCode.NONE, 1)
            # the default (false): offline until an ISR member returns, or an UNCLEAN ElectLeaders
            assert cluster.partition_state(3, "clean")[0] == -1
            admin.close()
            admin = KafkaAdminClient(bootstrap_servers=cluster.brokers[3].bootstrap)  # it caches the dead controller
            r = admin.elect_leaders(1, {"clean": [0], "unclean": [0]}, timeout_ms=20000, raise_errors=False)
            errors = {t.topic: p.error_code for t in r.replica_election_results for p in t.partition_result}
            assert errors == {"clean": ErrorCode.NONE, "unclean": ErrorCode.ELECTION_NOT_NEEDED}
            assert cluster.partition_state(3, "clean")[::2] == (2, [2])
        finally:
            admin.close()
