"""Paced writeback (log/writeback.py): every WRITEBACK_BYTES appended to a segment, the kernel is
asked to start writing them out, in a worker thread, so that a roll's fsync is not one burst."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Callable

import pytest
import trio

import pykbroker.cluster.partition as partition_module
import pykbroker.log.segment as segment_module
from pykbroker.cluster.partition import Partition
from pykbroker.log import writeback
from pykbroker.log.config import LogConfig
from pykbroker.log.partition_log import PartitionLog
from pykbroker.protocol.records import Record, build_batch


def batch(size: int) -> bytes:
    return build_batch([Record(0, 0, None, b"v" * size, [])], base_timestamp=1_700_000_000_000)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, str]]:
    calls: list[tuple[int, int, str]] = []
    monkeypatch.setattr(segment_module, "start_writeback",
                        lambda fd, offset, n: calls.append((offset, n, threading.current_thread().name)))
    return calls


def test_ranges_are_contiguous_and_cover_every_appended_byte(tmp_path: Path, started: list) -> None:
    plog = PartitionLog.open(tmp_path, LogConfig(), fsync=True)
    seg = plog.active_segment
    for size in (100, 5000, 300):
        plog.append(batch(size))
        seg.start_writeback()
    assert [(o, n) for o, n, _ in started] == [(0, started[0][1]), (started[0][1], started[1][1]),
                                              (started[0][1] + started[1][1], started[2][1])]
    assert sum(n for _, n, _ in started) == seg.size and seg.writeback_pending() == 0
    plog.truncate_to(0)  # cut below what was written back: the next range starts at the new end
    plog.append(batch(10))
    seg = plog.active_segment
    seg.start_writeback()
    assert started[-1][0] + started[-1][1] == seg.size
    plog.close()


@pytest.mark.parametrize("fsync", [True, False])
def test_partition_starts_writeback_in_a_worker_thread(tmp_path: Path, started: list,
                                                       monkeypatch: pytest.MonkeyPatch, fsync: bool) -> None:
    monkeypatch.setattr(partition_module, "WRITEBACK_BYTES", 10_000)

    async def main() -> None:
        plog = PartitionLog.open(tmp_path, LogConfig(), fsync=fsync)
        async with trio.open_nursery() as nursery:
            p = Partition("t", 0, plog, node_id=1, spawn=nursery.start_soon)
            for _ in range(30):
                await p.append_records(batch(1000))
                await trio.sleep(0.01)  # let the background writeback run
        pending = plog.active_segment.writeback_pending()
        plog.close()
        if not fsync:  # a log that never fsyncs gets no writeback advice either
            assert started == []
            return
        assert started and all(name != threading.main_thread().name for _, _, name in started)
        assert all(n >= 10_000 for _, n, _ in started) and pending < 10_000
        assert started[0][0] == 0 and all(a[0] + a[1] == b[0] for a, b in zip(started, started[1:]))

    trio.run(main)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_the_kernel_call_is_found_and_harmless_on_linux(tmp_path: Path) -> None:
    assert writeback.available
    path = tmp_path / "f"
    path.write_bytes(b"x" * 65536)
    import os
    fd = os.open(path, os.O_RDONLY)
    try:
        writeback.start_writeback(fd, 0, 65536)
    finally:
        os.close(fd)
    writeback.start_writeback(fd, 0, 10)  # a closed descriptor: advice, ignored
    assert path.read_bytes() == b"x" * 65536


def _allocated(path: Path) -> int:
    import os
    return os.stat(path).st_blocks * 512


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fallocate(FALLOC_FL_KEEP_SIZE) is Linux's")
async def settled(done: Callable[[], bool], timeout_s: float = 10) -> None:
    """Until background work (a worker thread) has done what ``done`` checks; a loaded machine may
    take far longer than the few milliseconds it usually takes."""
    with trio.move_on_after(timeout_s):
        while not done():
            await trio.sleep(0.01)


def test_blocks_are_allocated_ahead_in_a_worker_thread_and_given_back_on_roll(tmp_path: Path) -> None:
    """The active segment gets blocks past its end (its size unchanged, its bytes only the records);
    a rolled segment, and a closed one, give the blocks they did not use back."""
    assert writeback.preallocation_available
    config = LogConfig(segment_bytes=20 << 20)  # smaller than PREALLOCATE_BYTES: capped at segment.bytes

    async def main() -> None:
        plog = PartitionLog.open(tmp_path, config, fsync=False)
        async with trio.open_nursery() as nursery:
            p = Partition("t", 0, plog, node_id=1, spawn=nursery.start_soon)
            await p.append_records(batch(1000))
            first = plog.active_segment
            await settled(lambda: _allocated(first.log_path) >= (20 << 20) - 4096)  # the background preallocation
            assert first.size < 2000 and first.log_path.stat().st_size == first.size
            assert _allocated(first.log_path) >= (20 << 20) - 4096  # ahead, up to segment.bytes
            assert not first.preallocation_due()
            while plog.active_segment is first:  # fill it until it rolls
                await p.append_records(batch(1 << 19))
            await settled(lambda: _allocated(first.log_path) < first.size + (1 << 20))  # the roll's background flush
            assert _allocated(first.log_path) < first.size + (1 << 20)  # gives the rest back
            second = plog.active_segment
            await settled(lambda: _allocated(second.log_path) > second.size + (4 << 20))
            assert _allocated(second.log_path) > second.size + (4 << 20)  # created with blocks ahead
        records = [h.base_offset for h, _ in plog.iter_batches(0)]
        assert records == list(range(len(records)))  # nothing but the records in the files
        plog.close()
        assert _allocated(second.log_path) < second.size + (1 << 20)

    trio.run(main)


def test_a_failed_preallocation_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment_module, "preallocate", lambda fd, offset, n: False)  # e.g. ENOSPC, no fallocate
    plog = PartitionLog.open(tmp_path, LogConfig(), fsync=False)
    seg = plog.active_segment
    seg.preallocate()
    assert not seg.preallocation_due()  # not retried on every append: the next chunk's worth first
    plog.append(batch(100))
    assert seg.log_path.stat().st_size == seg.size
    plog.close()
