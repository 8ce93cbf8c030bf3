"""The high-watermark checkpoint (Kafka's replication-offset-checkpoint): format, atomic rewrite,
bad files ignored with a message, and a restarted replica starting from it (clamped to its log)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pykbroker.cluster.hw_checkpoint import FILE_NAME, initial_high_watermark, read_checkpoint, write_checkpoint
from pykbroker.cluster.partition_manager import PartitionManager
from pykbroker.log.manager import LogManager
from pykbroker.protocol.records import Record, build_batch


def test_round_trip_in_kafkas_format(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, {("t", 1): 7, ("a-b.c", 0): 42}, fsync=True)
    assert (tmp_path / FILE_NAME).read_text() == "0\n2\na-b.c 0 42\nt 1 7\n"
    assert read_checkpoint(tmp_path) == {("t", 1): 7, ("a-b.c", 0): 42}
    write_checkpoint(tmp_path, {("t", 1): 9})
    assert read_checkpoint(tmp_path) == {("t", 1): 9}
    assert not (tmp_path / (FILE_NAME + ".tmp")).exists()


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path) == {}


@pytest.mark.parametrize("text", ["1\n0\n", "0\n2\nt 0 5\n", "0\n1\nt 0\n", "0\n1\nt x 5\n", "", "\xff"])
def test_malformed_file_is_ignored_with_a_message_naming_it(tmp_path: Path, text: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / FILE_NAME).write_text(text, encoding="latin-1")
    assert read_checkpoint(tmp_path) == {}
    assert FILE_NAME in caplog.text
    assert (tmp_path / FILE_NAME).exists()  # never deleted because it could not be read


def test_initial_high_watermark_is_clamped_to_the_log() -> None:
    assert initial_high_watermark(None, 3, 10) == 3
    assert initial_high_watermark(5, 3, 10) == 5
    assert initial_high_watermark(50, 3, 10) == 10
    assert initial_high_watermark(1, 3, 10) == 3


def _batch(n: int) -> bytes:
    return build_batch([Record(i, 0, None, b"v") for i in range(n)], base_timestamp=1)


def test_restarted_replica_starts_from_the_checkpoint_not_zero_nor_log_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    logs = LogManager.open(data, fsync=False)
    logs.create_topic("t", 2)
    single = PartitionManager(logs, node_id=1)

    async def fill() -> None:
        for p in range(2):
            await single.get("t", p).append_records(_batch(10))

    trio.run(fill)
    logs.close()
    write_checkpoint(data, {("t", 0): 4, ("t", 1): 99})

    logs = LogManager.open(data, fsync=False)
    partitions = PartitionManager(logs, node_id=1)
    partitions.cluster = object()  # type: ignore[assignment]  # any node: its partitions replicate
    p0, p1 = partitions.get("t", 0), partitions.get("t", 1)
    assert p0 is not None and p1 is not None
    assert (p0.high_watermark, p0.log_end_offset) == (4, 10)
    assert p1.high_watermark == 10  # clamped to the log end
    assert p0.read(0, 1 << 20, min_one_batch=True).records  # below the HW: served
    assert partitions.high_watermarks() == {("t", 0): 4, ("t", 1): 10}
    trio.run(partitions.checkpoint_high_watermarks)
    assert read_checkpoint(data) == {("t", 0): 4, ("t", 1): 10}
    logs.close()
