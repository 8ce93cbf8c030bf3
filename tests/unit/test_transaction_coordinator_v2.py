"""Transactions v2 (KIP-890 part 2) in the coordinator: the epoch bump per EndTxn v5, its retries,
producer id rotation at the exhausted epoch, and the v1 log value that keeps it across a reload."""

from __future__ import annotations

import pytest
import trio

from pykbroker.coordinator.transaction_coordinator import EPOCH_CEILING, MAX_EPOCH, TV2, EndTxnResult
from pykbroker.coordinator.transaction_log import StoredTxn, TxnState, decode_value, encode_key, encode_value
from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.records import Record, build_batch, decode_records
from unit.test_transaction_coordinator import TP, Harness, _stored


def end(h: Harness, epoch: int, commit: bool, pid: int = 1000, txn_id: str = "t") -> EndTxnResult:
    return trio.run(h.coordinator.end_txn_v2, txn_id, pid, epoch, commit)


def ongoing(h: Harness, epoch: int = 0, pid: int = 1000) -> None:
    assert h.coordinator.add_partitions("t", pid, epoch, [TP], TV2) == ErrorCode.NONE


def test_each_end_bumps_the_epoch_and_the_markers_carry_it() -> None:
    h = Harness()
    c = h.coordinator
    h.init()
    ongoing(h)
    assert end(h, 0, commit=True) == EndTxnResult(ErrorCode.NONE, 1000, 1)
    assert h.markers == [(1000, 1, True, frozenset({TP}))]
    d = c.describe("t")
    assert (d.state, d.producer_id, d.producer_epoch) == ("CompleteCommit", 1000, 1)
    # the zombie of the last transaction (epoch 0) is fenced; the client goes on with epoch 1
    assert c.add_partitions("t", 1000, 0, [TP], TV2) == ErrorCode.PRODUCER_FENCED
    ongoing(h, epoch=1)
    assert end(h, 1, commit=False) == EndTxnResult(ErrorCode.NONE, 1000, 2)
    assert h.markers[-1] == (1000, 2, False, frozenset({TP}))
    stored = _stored(h)
    assert [s.state for s in stored] == [TxnState.EMPTY, TxnState.ONGOING, TxnState.PREPARE_COMMIT,
                                         TxnState.COMPLETE_COMMIT, TxnState.ONGOING, TxnState.PREPARE_ABORT,
                                         TxnState.COMPLETE_ABORT]
    assert [s.client_version for s in stored[1:]] == [TV2] * 6
    assert (c.v2_partition_adds, c.v2_epoch_bumps) == (2, 2)


def test_retries_and_kafkas_table_for_the_completed_states() -> None:
    """Kafka's TransactionCoordinator table: a retry names the epoch before the current one."""
    h = Harness()
    c = h.coordinator
    h.init()
    ongoing(h)
    assert end(h, 0, commit=True).producer_epoch == 1
    assert end(h, 0, commit=True) == EndTxnResult(ErrorCode.NONE, 1000, 1)  # a retry: answered, no bump
    assert end(h, 0, commit=False).error == ErrorCode.INVALID_TXN_STATE  # a retry of the other kind
    assert end(h, 1, commit=True).error == ErrorCode.INVALID_TXN_STATE  # nothing open to commit
    assert end(h, 5, commit=False).error == ErrorCode.PRODUCER_FENCED
    assert end(h, 1, commit=True, pid=999).error == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert len(h.markers) == 1
    # an abort with nothing added is allowed in v2 and bumps too (no marker to write anywhere)
    assert end(h, 1, commit=False) == EndTxnResult(ErrorCode.NONE, 1000, 2)
    assert h.markers[-1] == (1000, 2, False, frozenset())
    assert c.describe("t").state == "CompleteAbort"
    assert end(h, 1, commit=False) == EndTxnResult(ErrorCode.NONE, 1000, 2)  # its retry
    assert end(h, 2, commit=False).producer_epoch == 3  # CompleteAbort, current epoch: a new empty abort


def test_the_empty_state() -> None:
    h = Harness()
    h.init()
    h.init()  # epoch 1
    assert end(h, 1, commit=True).error == ErrorCode.INVALID_TXN_STATE
    assert end(h, 0, commit=False).error == ErrorCode.PRODUCER_FENCED  # no retry from Empty
    assert end(h, 1, commit=False) == EndTxnResult(ErrorCode.NONE, 1000, 2)
    assert h.coordinator.describe("t").start_ms > 0  # Kafka takes the abort's time as the start


def ongoing_at(epoch: int) -> Harness:
    """A transaction open at `epoch` (set directly: reaching it takes 32k transactions)."""
    h = Harness()
    h.init()
    h.coordinator.txns["t"].producer_epoch = epoch
    ongoing(h, epoch=epoch)
    return h


def test_an_exhausted_epoch_rotates_the_producer_id_at_completion() -> None:
    h = ongoing_at(MAX_EPOCH)
    c = h.coordinator
    assert end(h, MAX_EPOCH, commit=True) == EndTxnResult(ErrorCode.NONE, 1001, 0)
    assert h.markers == [(1000, EPOCH_CEILING, True, frozenset({TP}))]  # written under the old id
    d = c.describe("t")
    assert (d.state, d.producer_id, d.producer_epoch) == ("CompleteCommit", 1001, 0)
    prepare, complete = _stored(h)[-2:]
    assert (prepare.producer_id, prepare.producer_epoch, prepare.next_producer_id) == (1000, EPOCH_CEILING, 1001)
    assert (complete.producer_id, complete.prev_producer_id, complete.next_producer_id) == (1001, 1000, -1)
    # the client retrying with the id and epoch it had is told where it continues
    assert end(h, MAX_EPOCH, commit=True) == EndTxnResult(ErrorCode.NONE, 1001, 0)
    # and so is an InitProducerId naming them (Kafka's retry across the rotation: no bump)
    r = h.init(pid=1000, epoch=MAX_EPOCH)
    assert (r.error, r.producer_id, r.producer_epoch) == (ErrorCode.NONE, 1001, 0)
    assert c.add_partitions("t", 1001, 0, [TP], TV2) == ErrorCode.NONE


def test_rotation_pending_on_failed_markers_answers_the_next_id_and_survives_a_reload() -> None:
    h = ongoing_at(MAX_EPOCH)
    c = h.coordinator
    h.fail_markers = {TP}
    assert end(h, MAX_EPOCH, commit=False) == EndTxnResult(ErrorCode.NONE, 1001, 0)
    assert c.describe("t").state == "PrepareAbort"
    reloaded = h.reloaded()
    txn = reloaded.txns["t"]
    assert (txn.producer_id, txn.producer_epoch, txn.next_producer_id, txn.client_version) == (
        1000, EPOCH_CEILING, 1001, TV2)
    reloaded.finish_load(0)  # markers written now, then the rotation
    d = reloaded.describe("t")
    assert (d.state, d.producer_id, d.producer_epoch) == ("CompleteAbort", 1001, 0)


def test_an_abort_at_the_epoch_ceiling_does_not_bump() -> None:
    h = ongoing_at(EPOCH_CEILING)
    r = end(h, EPOCH_CEILING, commit=False)
    assert r.error == ErrorCode.NONE and h.markers[-1][1] == EPOCH_CEILING


def test_a_v1_end_of_a_transaction_keeps_the_epoch() -> None:
    """Older clients (EndTxn v0-4) on the same coordinator: transactions v1, as before."""
    h = Harness()
    c = h.coordinator
    h.init()
    c.add_partitions("t", 1000, 0, [TP])
    assert c.end_txn("t", 1000, 0, commit=True) == ErrorCode.NONE
    assert c.describe("t").producer_epoch == 0 and h.markers == [(1000, 0, True, frozenset({TP}))]
    assert _stored(h)[-1].client_version == 0


def test_a_v1_client_fenced_on_a_v2_coordinator_is_aborted_with_v2_rules() -> None:
    """Kafka aborts a fenced or timed-out transaction with the finalized version's rules."""
    h = Harness()
    c = h.coordinator
    h.init()
    c.add_partitions("t", 1000, 0, [TP])
    assert h.init().error == ErrorCode.CONCURRENT_TRANSACTIONS
    assert h.markers == [(1000, 2, False, frozenset({TP}))]
    assert c.end_txn("t", 1000, 0, commit=True) == ErrorCode.PRODUCER_FENCED


@pytest.mark.parametrize("version", [0, 1])
def test_both_log_value_versions_replay(version: int) -> None:
    """A log an older broker wrote (v0) and one written now (v1) rebuild the same state."""
    stored = StoredTxn(7, 3, 60_000, TxnState.ONGOING, frozenset({TP}), 10, 9)
    if version:
        stored = stored._replace(prev_producer_id=6, next_producer_id=8, client_version=TV2)
    batch = build_batch([Record(0, 0, encode_key("t"), encode_value(stored, version), [])])
    h = Harness()
    c = h.coordinator
    c.unload(0)
    c.begin_load(0)
    c.replay(0, [batch])
    txn = c.txns["t"]
    assert (txn.producer_id, txn.producer_epoch, txn.state, txn.partitions) == (7, 3, TxnState.ONGOING, {TP})
    assert (txn.prev_producer_id, txn.next_producer_id, txn.client_version) == (
        (6, 8, TV2) if version else (-1, -1, 0))
    assert decode_value(encode_value(stored, version)) == stored


def test_the_coordinator_writes_v0_values_below_transaction_version_1() -> None:
    h = Harness(transaction_version=0)
    h.init()
    assert [r.value[:2] for b in h.batches for r in decode_records(b)] == [b"\x00\x00"]
    h2 = Harness()
    h2.init()
    assert [r.value[:2] for b in h2.batches for r in decode_records(b)] == [b"\x00\x01"]


def test_a_fence_at_the_exhausted_epoch_rotates_the_producer_id() -> None:
    """Kafka 4.4: the epoch-fence abort (InitProducerId, timeout) rotates too; the fenced client's
    late EndTxn with the id and epoch it had is then a retry across the rotation."""
    h = ongoing_at(MAX_EPOCH)
    c = h.coordinator
    txn = c.txns["t"]
    trio.run(c.tick, txn.start_ms + txn.timeout_ms + 1)  # the transaction timed out
    assert h.markers[-1] == (1000, EPOCH_CEILING, False, frozenset({TP}))
    d = c.describe("t")
    assert (d.state, d.producer_id, d.producer_epoch) == ("CompleteAbort", 1001, 0)
    assert end(h, MAX_EPOCH, commit=False) == EndTxnResult(ErrorCode.NONE, 1001, 0)
    r = h.init()
    assert (r.error, r.producer_id, r.producer_epoch) == (ErrorCode.NONE, 1001, 1)


def test_init_producer_id_retries_are_answered_without_another_bump() -> None:
    """KIP-360 as Kafka's prepareIncrementProducerEpoch: the epoch before the last bump is a retry."""
    h = Harness()
    h.init()
    assert h.init(pid=1000, epoch=0).producer_epoch == 1
    assert h.init(pid=1000, epoch=0).producer_epoch == 1  # the same call again: not bumped twice
    assert h.init(pid=1000, epoch=7).error == ErrorCode.PRODUCER_FENCED
    assert h.init().producer_epoch == 2  # a new producer: bumps, and forgets the last epoch
    assert h.init(pid=1000, epoch=1).error == ErrorCode.PRODUCER_FENCED
    assert h.init(pid=999, epoch=2).error == ErrorCode.PRODUCER_FENCED
