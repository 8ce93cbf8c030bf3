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
