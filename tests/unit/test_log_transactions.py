"""The log side of transactions: the aborted-transaction index, producer state's open
transactions (and their snapshot), the last stable offset and markers in a partition."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from pykbroker.cluster.partition import READ_COMMITTED, Partition
from pykbroker.log.config import LogConfig
from pykbroker.log.partition_log import PartitionLog
from pykbroker.log.producer_state import InvalidProducerEpochError, ProducerStateManager
from pykbroker.log.txn_index import AbortedTxn, TransactionIndex
from pykbroker.protocol.records import Record, build_batch


def test_index_appends_collects_truncates_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000000.txnindex"
    index = TransactionIndex(path)
    for pid, first, last in [(1, 0, 5), (2, 3, 9), (3, 10, 12)]:
        index.append(AbortedTxn(pid, first, last, first))
    index.append(AbortedTxn(2, 3, 9, 3))  # a replay of one already indexed: ignored
    assert [t.producer_id for t in index.collect(6, 10)] == [2]  # overlaps [6, 10)
    assert [t.producer_id for t in index.collect(0, 100)] == [1, 2, 3]
    index.close()
    with path.open("ab") as f:
        f.write(b"\x00\x00torn")  # a torn last entry is dropped on load
    again = TransactionIndex(path)
    assert [t.producer_id for t in again.entries] == [1, 2, 3]
    again.truncate_to(9)
    assert [t.producer_id for t in again.entries] == [1] and path.stat().st_size == 34
    again.delete()
    assert not path.exists()


def txn_batch(pid: int, epoch: int, seq: int, n: int = 1) -> bytes:
    return build_batch([Record(i, 0, None, b"v", []) for i in range(n)], producer_id=pid, producer_epoch=epoch,
                       base_sequence=seq, is_transactional=True)


def test_partition_last_stable_offset_markers_and_aborted_ranges(tmp_path: Path) -> None:
    async def run() -> None:
        log = PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=False)
        p = Partition("t", 0, log, node_id=1)
        await p.append_records(build_batch([Record(0, 0, None, b"plain", [])]))          # 0
        await p.append_records(txn_batch(7, 0, 0, n=2))                                # 1-2
        await p.append_records(txn_batch(8, 0, 0))                                     # 3
        assert (p.last_stable_offset, p.high_watermark) == (1, 4)
        assert p.read(0, 1 << 20, min_one_batch=True, isolation_level=READ_COMMITTED).next_offset == 1
        assert p.append_marker(7, 0, commit=False, coordinator_epoch=0) == 4
        assert p.last_stable_offset == 3  # producer 8 still open
        assert p.append_marker(8, 0, commit=True, coordinator_epoch=0) == 5
        assert p.last_stable_offset == p.high_watermark == 6
        assert p.aborted_transactions(0, 6) == [(7, 1)]
        assert p.aborted_transactions(5, 6) == []  # the abort ended before the fetched range
        with pytest.raises(InvalidProducerEpochError):  # a marker from a fenced (older) coordinator epoch
            p.append_marker(8, -5, commit=True, coordinator_epoch=0)
        assert p.high_watermark == 6
        # A marker with a newer epoch (the coordinator fenced the producer) becomes its epoch.
        p.append_marker(7, 3, commit=False, coordinator_epoch=0)
        assert p.producers.entry(7).epoch == 3
        p.write_producer_snapshot(*p.snapshot_producers())
        log.close()

    trio.run(run)

    async def reopen() -> None:
        log = PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=False)
        p = Partition("t", 0, log, node_id=1)
        assert p.aborted_transactions(0, 100) == [(7, 1)]  # from the .txnindex file
        await p.append_records(txn_batch(9, 0, 0))
        log.close()

    trio.run(reopen)

    async def reopen_again() -> None:
        log = PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=False)
        p = Partition("t", 0, log, node_id=1)
        assert p.last_stable_offset == 7  # producer 9's transaction is still open after restarts
        log.close()

    trio.run(reopen_again)


def test_producer_snapshot_keeps_open_transactions(tmp_path: Path) -> None:
    from pykbroker.protocol.records import iter_batches

    state = ProducerStateManager()
    h = next(iter_batches(txn_batch(5, 0, 0)))[1]
    state.record(h, 42)
    assert state.first_unstable_offset() == 42 and state.expire(10**15, 1) == []  # never expires while open
    state.write_snapshot(tmp_path, 43, fsync=False)
    loaded = ProducerStateManager()
    assert loaded.load_snapshot(tmp_path, 100) == 43
    assert loaded.ongoing_transactions() == {5: 42}
    assert loaded.complete_txn(5, 0) == 42 and loaded.first_unstable_offset() is None


def test_markers_from_an_older_coordinator_are_fenced_and_the_epoch_survives_a_snapshot(tmp_path: Path) -> None:
    """Kafka's checkCoordinatorEpoch: once a producer's marker came from coordinator epoch 3 (the
    leader epoch of its __transaction_state partition), one from epoch 2, a coordinator that lost
    the partition and does not know yet, is refused (TRANSACTION_COORDINATOR_FENCED)."""
    from pykbroker.log.producer_state import CoordinatorFencedError
    from pykbroker.protocol.records import iter_batches

    state = ProducerStateManager()
    state.record(next(iter_batches(txn_batch(5, 0, 0)))[1], 10)
    state.check_marker(5, 0, 3)
    assert state.complete_txn(5, 0, coordinator_epoch=3) == 10
    with pytest.raises(CoordinatorFencedError):
        state.check_marker(5, 0, 2)
    state.check_marker(5, 0, 3)  # the same coordinator again (a retried marker) is fine
    state.write_snapshot(tmp_path, 12, fsync=False)
    loaded = ProducerStateManager()
    assert loaded.load_snapshot(tmp_path, 100) == 12
    with pytest.raises(CoordinatorFencedError):
        loaded.check_marker(5, 0, 2)
    loaded.complete_txn(5, 0)  # a header-only replay does not know the marker's coordinator epoch
    assert loaded.entry(5).coordinator_epoch == 3
