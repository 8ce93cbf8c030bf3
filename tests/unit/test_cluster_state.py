"""The cluster's ZooKeeper values in Kafka's JSON shapes, and the leader-epoch checkpoint."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from pykbroker.cluster.epoch_cache import LeaderEpochCache
from pykbroker.cluster.model import BrokerInfo, PartitionState, TopicAssignment, parse_controller
from pykbroker.cluster.replication import Replication
from pykbroker.cluster.zk import split_connect


def test_broker_registration_is_kafkas_json() -> None:
    raw = json.loads(BrokerInfo(2, "127.0.0.1", 9093, "r1").to_json())
    assert raw["endpoints"] == ["PLAINTEXT://127.0.0.1:9093"] and raw["rack"] == "r1" and raw["version"] == 4
    assert "rack" not in json.loads(BrokerInfo(2, "h", 1).to_json())
    kafka_written = (b'{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://k1:9092"],'
                     b'"jmx_port":-1,"features":{},"host":"k1","timestamp":"1","port":9092,"version":5}')
    assert BrokerInfo.from_json(7, kafka_written) == BrokerInfo(7, "k1", 9092, None)
    assert BrokerInfo.from_json(7, b"not json") is None


def test_partition_state_and_topic_round_trip() -> None:
    state = PartitionState(3, 4, (3, 1), 2, zk_version=9)
    assert json.loads(state.to_json()) == {"controller_epoch": 2, "leader": 3, "version": 1, "leader_epoch": 4,
                                           "isr": [3, 1]}
    assert PartitionState.from_json(state.to_json(), 9) == state
    assert PartitionState.from_json(b'{"leader": 1}', 0) is None
    topic = TopicAssignment("t", uuid.uuid4(), {0: (1, 2), 1: (2, 1)})
    assert json.loads(topic.to_json())["partitions"] == {"0": [1, 2], "1": [2, 1]}
    assert TopicAssignment.from_json("t", topic.to_json()) == topic
    assert parse_controller(b'{"version":1,"brokerid":2,"timestamp":"1"}') == 2


def test_zookeeper_connect_chroot() -> None:
    assert split_connect("a:1,b:2/pyk/x") == ("a:1,b:2", "/pyk/x")
    assert split_connect("a:1") == ("a:1", "")
    assert split_connect("a:1/") == ("a:1", "")


def test_epoch_cache_answers_end_offsets_and_survives_restart(tmp_path: Path) -> None:
    cache = LeaderEpochCache(tmp_path, fsync=False)
    assert cache.end_offset_for(0, 10) == (-1, -1)
    for epoch, start in ((0, 0), (2, 100), (5, 150)):
        assert cache.assign(epoch, start)
    assert not cache.assign(4, 160)  # older than the latest: ignored
    cache.persist()
    again = LeaderEpochCache(tmp_path)
    assert again.entries == [(0, 0), (2, 100), (5, 150)]
    assert again.end_offset_for(0, 200) == (0, 100)
    assert again.end_offset_for(1, 200) == (0, 100)  # the largest epoch <= 1 is 0
    assert again.end_offset_for(3, 200) == (2, 150)
    assert again.end_offset_for(5, 200) == (5, 200)
    assert again.end_offset_for(9, 200) == (5, 200)
    assert again.truncate_from_end(120) and again.entries == [(0, 0), (2, 100)]


def test_epoch_cache_replaces_an_epoch_that_wrote_nothing(tmp_path: Path) -> None:
    cache = LeaderEpochCache(tmp_path, fsync=False)
    cache.assign(1, 50)
    cache.assign(2, 50)
    assert cache.entries == [(2, 50)]


def test_a_damaged_checkpoint_is_reported_and_ignored(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "leader-epoch-checkpoint").write_text("0\n3\n1 0\n")
    assert LeaderEpochCache(tmp_path).entries == []
    assert "leader-epoch-checkpoint is unreadable" in caplog.text


def test_high_watermark_is_the_minimum_over_the_isr_and_never_moves_back() -> None:
    r = Replication(node_id=1)
    r.lead((1, 2, 3), (1, 2, 3), log_end_offset=10, now_ms=1000)
    assert not r.advance((1, 2, 3), 10)  # followers' positions unknown yet
    r.record_fetch(2, 10, 10, 1001)
    r.record_fetch(3, 7, 10, 1001)
    assert r.advance((1, 2, 3), 10) and r.high_watermark == 7
    assert r.advance((1, 2), 10) and r.high_watermark == 10  # 3 left the ISR
    r.record_fetch(2, 4, 10, 1002)  # never backwards
    assert not r.advance((1, 2), 12) and r.high_watermark == 10


def test_a_follower_lags_when_not_caught_up_for_the_lag_time() -> None:
    r = Replication(node_id=1)
    r.lead((1, 2, 3), (1, 2, 3), log_end_offset=10, now_ms=0)  # ISR members count as caught up at 0
    r.record_fetch(2, 10, 10, 500)  # reached the leader's end: caught up at 500
    r.record_fetch(3, 5, 10, 500)   # behind
    assert r.lagging((1, 2, 3), 900, 1000) == []
    assert r.lagging((1, 2, 3), 1100, 1000) == [3]
    assert r.lagging((1, 2, 3), 1600, 1000) == [2, 3]
    r.record_fetch(3, 10, 12, 1700)  # reached where the leader ended at its previous fetch: caught up as of then
    assert r.followers[3].last_caught_up_ms == 500
    r.record_fetch(3, 12, 12, 1800)
    assert r.followers[3].last_caught_up_ms == 1800
    r.high_watermark = 12
    assert not r.isr_candidate(3, (1, 2, 3))  # already in
    assert r.isr_candidate(3, (1, 2))  # out of the ISR, at the high watermark: may rejoin


def test_a_follower_that_stopped_fetching_is_not_taken_back_into_the_isr() -> None:
    """It died right after a fetch that reached the high watermark: taking it back would drop it again
    for lag a moment later, and the ISR would flap between the two (seen as a write a second)."""
    r = Replication(node_id=1)
    r.lead((1, 2, 3), (1, 2, 3), log_end_offset=10, now_ms=0)
    r.record_fetch(2, 10, 10, 100)
    r.record_fetch(3, 10, 10, 100)
    r.advance((1, 2, 3), 10)
    assert r.lagging((1, 2, 3), 2200, 2000) == [2, 3]
    r.record_fetch(2, 10, 10, 2300)  # 2 fetches again, 3 is gone
    assert r.isr_candidate(2, (1,), fetched_since_ms=2300 - 2000)
    assert not r.isr_candidate(3, (1,), fetched_since_ms=2300 - 2000)


def test_metadata_names_no_leader_that_this_broker_does_not_see_alive() -> None:
    """Kafka's MetadataCache: a leader missing from the live brokers is -1 (LEADER_NOT_AVAILABLE),
    never an id that the same Metadata response's broker list lacks (kafka-python raised
    UnknownBrokerIdError on one, right after a whole-cluster restart)."""
    from types import SimpleNamespace

    from pykbroker.cluster.model import ClusterSnapshot
    from pykbroker.cluster.node import ClusterNode

    snapshot = ClusterSnapshot(brokers={2: BrokerInfo(2, "127.0.0.1", 9092)},
                               topics={"t": TopicAssignment("t", uuid.uuid4(), {0: (1, 2), 1: (2, 1)})},
                               states={("t", 0): PartitionState(1, 3, (1, 2), 1), ("t", 1): PartitionState(2, 0, (2, 1), 1)})
    node = SimpleNamespace(snapshot=snapshot)
    first = ClusterNode.leader_and_isr(node, "t", 0)  # type: ignore[arg-type]
    assert (first.leader_id, first.leader_epoch, first.offline) == (-1, 3, [1])
    assert ClusterNode.leader_and_isr(node, "t", 1).leader_id == 2  # type: ignore[arg-type, union-attr]
