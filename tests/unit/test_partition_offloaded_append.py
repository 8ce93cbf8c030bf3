"""Large client appends are written in a worker thread (Partition._check_and_append_in_thread):
nothing of them is visible before they are complete, other appends and markers stay in order, and
check-and-append stays atomic."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from pykbroker.cluster import partition as partition_module
from pykbroker.cluster.partition import OFFLOAD_BYTES, Partition
from pykbroker.log import LogConfig, PartitionLog
from pykbroker.protocol.records import Record, build_batch, iter_batches


def batch(value_bytes: int, **kw: object) -> bytes:
    return build_batch([Record(0, 0, b"k", b"v" * value_bytes, [])], base_offset=0, **kw)  # type: ignore[arg-type]


def offsets(p: Partition) -> list[tuple[int, int]]:
    read = p.read(0, 1 << 30, min_one_batch=True, as_file_records=False)
    return [(h.base_offset, h.batch_length) for _, h in iter_batches(read.records)]


async def with_partition(tmp_path: Path, body) -> None:  # type: ignore[no-untyped-def]
    async with trio.open_nursery() as nursery:
        p = Partition("t", 0, PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=False), 1,
                      spawn=nursery.start_soon)
        await body(p)


def test_a_large_append_is_invisible_until_complete_and_keeps_order(tmp_path: Path, monkeypatch) -> None:
    started, release = trio.Event(), None
    token = None

    real = partition_module._PendingWrite.write

    def slow_write(self: partition_module._PendingWrite) -> None:  # worker thread
        trio.from_thread.run_sync(started.set, trio_token=token)
        trio.from_thread.run(release.wait, trio_token=token)  # type: ignore[union-attr]
        real(self)

    monkeypatch.setattr(partition_module._PendingWrite, "write", slow_write)

    async def body(p: Partition) -> None:
        nonlocal release, token
        release, token = trio.Event(), trio.lowlevel.current_trio_token()
        large, small = batch(OFFLOAD_BYTES), batch(10)
        results: list[str] = []

        async def produce(name: str, records: bytes) -> None:
            r = await p.append_records(records)
            results.append(f"{name}@{r.base_offset}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce, "large", large)
            await started.wait()
            nursery.start_soon(produce, "small", small)
            await trio.testing.wait_all_tasks_blocked()
            assert p.log_end_offset == 0 and offsets(p) == [] and results == []  # being written
            release.set()
        assert results == ["large@0", "small@1"]
        assert [o for o, _ in offsets(p)] == [0, 1]

    trio.run(with_partition, tmp_path, body)


def test_a_marker_during_a_large_write_goes_after_it(tmp_path: Path, monkeypatch) -> None:
    """The coordinator's marker is synchronous: the large append whose thread has not written yet
    is written and completed first, on the loop; the thread then finds it done."""
    gate = trio.Event()
    real_run_sync = trio.to_thread.run_sync

    async def gated(fn, *args, **kw):  # type: ignore[no-untyped-def]
        if getattr(fn, "__self__", None).__class__ is partition_module._PendingWrite:
            await gate.wait()  # the worker thread is slow to start
        return await real_run_sync(fn, *args, **kw)

    monkeypatch.setattr(trio.to_thread, "run_sync", gated)

    async def body(p: Partition) -> None:
        large = batch(OFFLOAD_BYTES, producer_id=7, producer_epoch=0, base_sequence=0, is_transactional=True)
        result: list[int] = []

        async def produce() -> None:
            result.append((await p.append_records(large)).base_offset)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            await trio.testing.wait_all_tasks_blocked()
            assert p.log_end_offset == 0
            marker_offset = p.append_marker(7, 0, commit=False, coordinator_epoch=0)
            assert marker_offset == 1 and p.log_end_offset == 2
            gate.set()
        assert result == [0]
        assert [o for o, _ in offsets(p)] == [0, 1]
        assert p.producers.first_unstable_offset() is None
        assert [(t.producer_id, t.first_offset) for t in p.log.collect_aborted(0, 2)] == [(7, 0)]

    trio.run(with_partition, tmp_path, body)


def test_small_and_internal_appends_stay_on_the_loop(tmp_path: Path, monkeypatch) -> None:
    def no_thread(self: partition_module._PendingWrite) -> None:
        raise AssertionError("written in a thread")

    monkeypatch.setattr(partition_module._PendingWrite, "write", no_thread)

    async def body(p: Partition) -> None:
        assert (await p.append_records(batch(10))).base_offset == 0
    trio.run(with_partition, tmp_path, body)
