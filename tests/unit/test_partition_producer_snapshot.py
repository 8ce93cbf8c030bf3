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
