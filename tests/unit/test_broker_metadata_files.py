"""Broker start-up with unreadable broker metadata files: refuse (StartupError naming the file),
never guess; and producer-id blocks survive restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pykbroker.broker import Broker
from pykbroker.config import BrokerConfig
from pykbroker.log.errors import StartupError, UnreadableMetadataError


def make(data: Path, **extra: str) -> Broker:
    return Broker(BrokerConfig.from_mapping({"log.dirs": str(data), "listeners": "PLAINTEXT://127.0.0.1:0",
                                             "offsets.topic.num.partitions": "1", **extra}))


def test_producer_ids_are_never_reused_and_an_unreadable_block_file_stops_start_up(tmp_path: Path) -> None:
    b = make(tmp_path)
    first = trio.run(b.next_producer_id)
    b.close()
    b = make(tmp_path)
    assert trio.run(b.next_producer_id) >= first + 1000  # a new block after a restart
    b.close()
    (tmp_path / "producer-id-block").write_text("garbage")
    with pytest.raises(UnreadableMetadataError, match="producer-id-block"):
        make(tmp_path)
    assert (tmp_path / "producer-id-block").read_text() == "garbage"


def test_meta_properties_of_another_cluster_stops_start_up(tmp_path: Path) -> None:
    make(tmp_path, **{"cluster.id": "abc"}).close()
    assert "cluster.id=abc" in (tmp_path / "meta.properties").read_text()
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(StartupError, match="belongs to cluster abc"):
        make(tmp_path, **{"cluster.id": "other"})


def test_leftover_delete_dirs_are_left_to_the_background_task(tmp_path: Path) -> None:
    make(tmp_path).close()
    doomed = tmp_path / "t-0.00112233445566778899aabbccddeeff-delete"
    doomed.mkdir()
    b = make(tmp_path)
    assert doomed.exists()  # not removed on the (event-loop) start-up path

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(b.run)
            with trio.fail_after(10):
                while doomed.exists():
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    trio.run(main)
    assert not doomed.exists()


def test_committed_offsets_load_in_the_background_after_start(tmp_path: Path) -> None:
    """Start-up does not replay __consumer_offsets before listening: the groups answer
    COORDINATOR_LOAD_IN_PROGRESS until a background task has read it (in worker threads)."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.structs import OffsetAndMetadata

    from pykbroker.protocol.errors import ErrorCode
    from pykbroker.testing import running_broker

    data = tmp_path / "data"
    with running_broker({"offsets.topic.num.partitions": 3}, data_dir=data) as running:
        admin = KafkaAdminClient(bootstrap_servers=running.bootstrap_servers)
        admin.create_topics([NewTopic("t", 5, 1)])
        admin.close()
        consumer = KafkaConsumer(bootstrap_servers=running.bootstrap_servers, group_id="g", enable_auto_commit=False)
        consumer.commit({TopicPartition("t", i): OffsetAndMetadata(10 + i, None, -1) for i in range(5)})
        consumer.close()
    broker = Broker(BrokerConfig.from_mapping({"log.dirs": str(data), "listeners": "PLAINTEXT://127.0.0.1:0",
                                               "offsets.topic.num.partitions": "3"}))
    assert broker.groups.status("g") == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert broker.groups.offsets.get("g") == {}

    async def serve_until_loaded() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(broker.run)
            with trio.fail_after(10):
                while broker.groups.status("g") != ErrorCode.NONE:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()

    trio.run(serve_until_loaded)
    assert {tp: c.offset for tp, c in broker.groups.offsets.get("g").items()} == {("t", i): 10 + i for i in range(5)}
