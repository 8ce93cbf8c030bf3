"""A producer idle for longer than the trailing segments is still de-duplicated after a restart,
because the partition snapshots producer state (on roll and at clean shutdown) and loads it."""

from __future__ import annotations

from pathlib import Path

import trio

from pykbroker.cluster.partition import Partition
from pykbroker.log.config import LogConfig
from pykbroker.log.partition_log import PartitionLog
from pykbroker.protocol.records import Record, build_batch


def idempotent_batch(seq: int) -> bytes:
    return build_batch([Record(0, 0, None, b"once", [])], base_timestamp=1_700_000_000_000,
                       producer_id=7, producer_epoch=0, base_sequence=seq)


def filler() -> bytes:
    return build_batch([Record(0, 0, None, b"x" * 400, [])], base_timestamp=1_700_000_000_000)


def test_duplicate_detected_after_restart_past_many_segments(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=2048)

    async def first_life() -> int:
        plog = PartitionLog.open(tmp_path, config, fsync=False)
        p = Partition("t", 0, plog, node_id=1)
        original = await p.append_records(idempotent_batch(0))
        for _ in range(40):  # many segments of other producers' data
            await p.append_records(filler())
        assert len(plog.segments) > 5
        p.write_producer_snapshot(*p.snapshot_producers())
        plog.close()
        return original.base_offset

    async def second_life() -> tuple[bool, int]:
        plog = PartitionLog.open(tmp_path, config, fsync=False)
        p = Partition("t", 0, plog, node_id=1)
        again = await p.append_records(idempotent_batch(0))
        end = plog.log_end_offset
        plog.close()
        return again.duplicate, again.base_offset if again.duplicate else end

    offset = trio.run(first_life)
    duplicate, base = trio.run(second_life)
    assert duplicate and base == offset


def test_the_next_segment_is_created_in_a_worker_thread_before_the_roll(tmp_path: Path) -> None:
    """A produce that rolls opens no file on the event loop: the segment it rolls to was created
    ahead in a worker thread (file creation can wait behind another partition's fsync)."""
    import threading

    from pykbroker.log.segment import LogSegment

    config = LogConfig.from_kafka_configs({"internal.segment.bytes": "1000"})
    created_on: list[str] = []
    real_create = LogSegment.create.__func__  # type: ignore[attr-defined]

    def spying_create(cls, directory, base, cfg):  # noqa: ANN001
        created_on.append(threading.current_thread().name)
        return real_create(cls, directory, base, cfg)

    async def produce() -> list[int]:
        log = PartitionLog.open(tmp_path / "t-0", config, fsync=False)
        partition = Partition("t", 0, log, node_id=1)
        LogSegment.create = classmethod(spying_create)  # type: ignore[method-assign]
        try:
            for i in range(12):
                await partition.append_records(build_batch([Record(0, 0, None, b"x" * 200, [])], base_timestamp=i))
        finally:
            LogSegment.create = classmethod(real_create)  # type: ignore[method-assign]
        bases = [seg.base_offset for seg in log.segments]
        log.close()
        return bases

    bases = trio.run(produce)
    assert len(bases) >= 3 and bases == sorted(bases)
    assert created_on and threading.main_thread().name not in created_on, created_on
    reopened = PartitionLog.open(tmp_path / "t-0", config, fsync=False)
    assert [seg.base_offset for seg in reopened.segments] == bases and reopened.log_end_offset == 12
    reopened.close()
