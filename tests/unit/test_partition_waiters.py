"""Who is woken by what on a partition (cluster/waiters.py), as Kafka's purgatories: followers'
fetches by appends, consumers' fetches when the high watermark or last stable offset moves,
acks=all produces when the high watermark covers their batch; a role change wakes everyone."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from pykbroker.cluster.model import PartitionState
from pykbroker.cluster.partition import Partition
from pykbroker.cluster.roles import (
    append_replicated, become_follower, become_leader, follower_fetched, wait_for_replication,
)
from pykbroker.cluster.waiters import Waiters
from pykbroker.log import LogConfig, PartitionLog
from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.records import Record, build_batch


def batch(offset: int = 0, **kw: object) -> bytes:
    return build_batch([Record(0, 0, b"k", b"v", [])], base_offset=offset, **kw)  # type: ignore[arg-type]


def txn_batch(pid: int, seq: int) -> bytes:
    return batch(producer_id=pid, producer_epoch=0, base_sequence=seq, is_transactional=True)


def events(n: int) -> list[trio.Event]:
    return [trio.Event() for _ in range(n)]


def test_appends_wake_only_replica_fetches() -> None:
    w = Waiters()
    replica, reader, produce = events(3)
    w.add_fetch(replica, replica=True)
    w.add_fetch(reader, replica=False)
    w.add_produce(5, produce)
    w.appended()
    assert (replica.is_set(), reader.is_set(), produce.is_set()) == (True, False, False)


def test_high_watermark_wakes_readers_and_the_produces_it_covers() -> None:
    w = Waiters()
    replica, reader, p3, p5, p9 = events(5)
    w.add_fetch(replica, replica=True)
    w.add_fetch(reader, replica=False)
    for offset, e in ((9, p9), (3, p3), (5, p5)):
        w.add_produce(offset, e)
    w.readable_moved(5)
    assert [e.is_set() for e in (replica, reader, p3, p5, p9)] == [False, True, True, True, False]
    w.remove_produce(p3)
    w.remove_produce(p5)
    assert len(w) == 3  # replica, reader, p9
    w.readable_moved(9)
    assert p9.is_set()


def test_removed_produces_are_not_woken_and_do_not_pile_up() -> None:
    w = Waiters()
    gone = events(500)
    for i, e in enumerate(gone):
        w.add_produce(10 + i, e)
        w.remove_produce(e)  # e.g. timed out while the high watermark was stuck
    assert len(w) == 0 and len(w._produces) <= 64
    w.readable_moved(10_000)
    assert not any(e.is_set() for e in gone)


def test_wake_all_wakes_every_waiter() -> None:
    w = Waiters()
    replica, reader, produce = events(3)
    w.add_fetch(replica, replica=True)
    w.add_fetch(reader, replica=False)
    w.add_produce(100, produce)
    w.wake_all()
    assert replica.is_set() and reader.is_set() and produce.is_set()


# ---------------------------------------------------------------- on a partition


async def leader(tmp_path: Path) -> Partition:
    p = Partition("t", 0, PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=False), 1)
    p.join_cluster()
    await become_leader(p, PartitionState(1, 1, (1, 2, 3), 1), (1, 2, 3))
    return p


def parked(p: Partition) -> tuple[trio.Event, trio.Event, trio.Event]:
    """A follower's fetch, a consumer's fetch and an acks=all produce of offset 0, parked on ``p``."""
    replica, reader, produce = events(3)
    p.waiters.add_fetch(replica, replica=True)
    p.waiters.add_fetch(reader, replica=False)
    p.waiters.add_produce(1, produce)
    return replica, reader, produce


def test_leader_append_wakes_followers_and_their_fetches_wake_consumers(tmp_path: Path) -> None:
    async def main() -> None:
        p = await leader(tmp_path)
        replica, reader, produce = parked(p)
        await p.append_records(batch())
        assert (replica.is_set(), reader.is_set(), produce.is_set()) == (True, False, False)
        follower_fetched(p, 2, 1)  # one follower has it: the ISR's minimum has not moved
        assert p.high_watermark == 0 and not reader.is_set() and not produce.is_set()
        follower_fetched(p, 3, 1)
        assert p.high_watermark == 1 and reader.is_set() and produce.is_set()
    trio.run(main)


def test_acks_all_produce_is_answered_when_the_followers_have_it(tmp_path: Path) -> None:
    async def main() -> None:
        p = await leader(tmp_path)
        await p.append_records(batch())
        outcome: list[ErrorCode] = []

        async def produce() -> None:
            outcome.append(await wait_for_replication(p, 1, p.leader_epoch, trio.current_time() + 10))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            await trio.testing.wait_all_tasks_blocked()
            follower_fetched(p, 2, 1)
            await trio.testing.wait_all_tasks_blocked()
            assert outcome == []
            follower_fetched(p, 3, 1)
        assert outcome == [ErrorCode.NONE]
    trio.run(main)


def test_losing_leadership_wakes_every_waiter(tmp_path: Path) -> None:
    async def main() -> None:
        p = await leader(tmp_path)
        waiting = parked(p)
        become_follower(p, PartitionState(2, 2, (1, 2, 3), 2), (1, 2, 3))
        assert all(e.is_set() for e in waiting)
    trio.run(main)


def test_commit_marker_wakes_read_committed_consumers(tmp_path: Path) -> None:
    async def main() -> None:
        p = await leader(tmp_path)
        await p.append_records(txn_batch(7, 0))
        follower_fetched(p, 2, 1)
        follower_fetched(p, 3, 1)
        assert (p.high_watermark, p.last_stable_offset) == (1, 0)
        reader = trio.Event()
        p.waiters.add_fetch(reader, replica=False)
        p.append_marker(7, 0, commit=True, coordinator_epoch=0)
        assert p.high_watermark == 1 and p.last_stable_offset == 1 and reader.is_set()
    trio.run(main)


def test_follower_wakes_its_consumers_when_it_learns_a_higher_high_watermark(tmp_path: Path) -> None:
    async def main() -> None:
        p = Partition("t", 0, PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=False), 2)
        p.join_cluster()
        become_follower(p, PartitionState(1, 1, (1, 2), 1), (1, 2))
        reader = trio.Event()
        p.waiters.add_fetch(reader, replica=False)
        await append_replicated(p, batch(0, partition_leader_epoch=1), 0)
        assert p.log_end_offset == 1 and not reader.is_set()  # copied, not yet committed
        await append_replicated(p, b"", 1)
        assert p.high_watermark == 1 and reader.is_set()
    trio.run(main)


def test_single_node_append_wakes_consumers(tmp_path: Path) -> None:
    async def main() -> None:
        p = Partition("t", 0, PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=False), 1)
        reader = trio.Event()
        p.waiters.add_fetch(reader, replica=False)
        await p.append_records(batch())
        assert reader.is_set()
    trio.run(main)
