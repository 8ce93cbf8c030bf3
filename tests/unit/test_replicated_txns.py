"""A follower indexes the aborted transactions of the batches it copies (cluster/replicated_txns.py),
so that read_committed works on it once it leads after a failover."""

from __future__ import annotations

from pathlib import Path

import trio

from pykbroker.cluster.model import PartitionState
from pykbroker.cluster.partition import Partition
from pykbroker.cluster.roles import append_replicated, become_follower
from pykbroker.log import LogConfig, PartitionLog
from pykbroker.log.txn_index import AbortedTxn
from pykbroker.protocol.records import Record, build_batch, build_end_txn_marker


def txn_batch(pid: int, offset: int) -> bytes:
    return build_batch([Record(0, 0, b"k", b"v", [])], base_offset=offset, producer_id=pid, producer_epoch=0,
                       base_sequence=offset, is_transactional=True, partition_leader_epoch=1)


def marker(pid: int, offset: int, commit: bool) -> bytes:
    return build_end_txn_marker(commit=commit, producer_id=pid, producer_epoch=0, coordinator_epoch=0,
                                base_offset=offset, partition_leader_epoch=1)


def test_follower_indexes_aborted_transactions_and_not_committed_ones(tmp_path: Path) -> None:
    async def main() -> None:
        p = Partition("t", 0, PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=False), 1)
        p.join_cluster()
        become_follower(p, PartitionState(2, 1, (1, 2), 1), (1, 2))
        # pid 7 aborts (offsets 0, 2), pid 8 commits (1, 3), pid 9 aborts (4, 5)
        leader_log = (txn_batch(7, 0) + txn_batch(8, 1) + marker(7, 2, False) + marker(8, 3, True)
                      + txn_batch(9, 4) + marker(9, 5, False))
        await append_replicated(p, leader_log, 6)
        aborted = p.log.collect_aborted(0, 6)
        assert [(a.producer_id, a.first_offset, a.last_offset) for a in aborted] == [(7, 0, 2), (9, 4, 5)]
        assert all(isinstance(a, AbortedTxn) for a in aborted)
        assert p.producers.first_unstable_offset() is None
    trio.run(main)


def test_a_follower_learns_the_coordinator_epoch_of_the_markers_it_copies(tmp_path: Path) -> None:
    async def main() -> None:
        p = Partition("t", 0, PartitionLog.open(tmp_path / "t-0", LogConfig(), fsync=False), 1)
        p.join_cluster()
        become_follower(p, PartitionState(2, 1, (1, 2), 1), (1, 2))
        epoch_4_marker = build_end_txn_marker(commit=True, producer_id=7, producer_epoch=0, coordinator_epoch=4,
                                              base_offset=1, partition_leader_epoch=1)
        await append_replicated(p, txn_batch(7, 0) + epoch_4_marker, 2)
        assert p.producers.entry(7).coordinator_epoch == 4  # a marker from an older coordinator is refused there
    trio.run(main)
