"""The transaction coordinator's state machine, with its log and marker writes captured."""

from __future__ import annotations

import itertools

import pytest
import trio

from pykbroker.coordinator.transaction_coordinator import MAX_EPOCH, TransactionCoordinator, TxnLimits
from pykbroker.coordinator.transaction_log import StoredTxn, TxnState, decode_value, encode_value
from pykbroker.log.errors import KafkaStorageError
from pykbroker.protocol.errors import ErrorCode

TP = ("orders", 0)


class Harness:
    def __init__(self, limits: TxnLimits = TxnLimits(), transaction_version: int = 2) -> None:
        self.batches: list[bytes] = []
        self.markers: list[tuple[int, int, bool, frozenset]] = []
        self.fail_markers: set = set()
        self.fail_appends = False
        ids = itertools.count(1000)

        async def new_id() -> int:
            return next(ids)

        def append(partition: int, batch: bytes) -> None:
            if self.fail_appends:
                raise KafkaStorageError("disk full")
            self.batches.append(batch)

        def write_markers(txn_id: str, pid: int, epoch: int, commit: bool, coordinator_epoch: int, partitions: frozenset) -> set:
            self.markers.append((pid, epoch, commit, partitions))
            return set(partitions) & self.fail_markers

        self.coordinator = TransactionCoordinator(append, 1, write_markers, new_id, limits, transaction_version)
        self.coordinator.begin_load(0)
        self.coordinator.finish_load(0)

    def init(self, txn_id: str = "t", timeout_ms: int = 60_000, pid: int = -1, epoch: int = -1):
        return trio.run(self.coordinator.init_producer_id, txn_id, timeout_ms, pid, epoch)

    def reloaded(self) -> TransactionCoordinator:
        """A second coordinator that replays everything the first one wrote."""
        other = Harness()
        other.coordinator.unload(0)
        other.coordinator.begin_load(0)
        other.coordinator.replay(0, self.batches)
        return other.coordinator


def test_init_add_commit_and_the_states_in_between() -> None:
    h = Harness()
    c = h.coordinator
    r = h.init()
    assert (r.error, r.producer_id, r.producer_epoch) == (ErrorCode.NONE, 1000, 0)
    assert c.add_partitions("t", 1000, 0, [TP]) == ErrorCode.NONE
    assert c.describe("t").state == "Ongoing" and c.describe("t").partitions == (TP,)
    assert c.add_partitions("t", 1000, 0, [TP]) == ErrorCode.NONE  # already in: no write
    assert c.end_txn("t", 1000, 0, commit=True) == ErrorCode.NONE
    assert h.markers == [(1000, 0, True, frozenset({TP}))]
    assert c.describe("t").state == "CompleteCommit" and c.describe("t").partitions == ()
    assert c.end_txn("t", 1000, 0, commit=True) == ErrorCode.NONE  # a retried commit
    assert c.end_txn("t", 1000, 0, commit=False) == ErrorCode.INVALID_TXN_STATE
    assert [s.state for s in _stored(h)] == [TxnState.EMPTY, TxnState.ONGOING, TxnState.PREPARE_COMMIT,
                                             TxnState.COMPLETE_COMMIT]


def _stored(h: Harness) -> list[StoredTxn]:
    from pykbroker.protocol.records import decode_records

    return [decode_value(r.value) for b in h.batches for r in decode_records(b)]


def test_errors_for_wrong_producer_epoch_and_state() -> None:
    h = Harness()
    c = h.coordinator
    assert h.init(timeout_ms=0).error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert h.init(timeout_ms=TxnLimits().max_timeout_ms + 1).error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    h.init()
    assert c.add_partitions("t", 1000, 1, [TP]) == ErrorCode.PRODUCER_FENCED
    assert c.add_partitions("t", 999, 0, [TP]) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert c.add_partitions("unknown", 1000, 0, [TP]) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert c.end_txn("t", 1000, 0, commit=True) == ErrorCode.INVALID_TXN_STATE  # Empty
    assert h.init(pid=1000, epoch=5).error == ErrorCode.PRODUCER_FENCED  # KIP-360: not the current epoch
    assert h.init(pid=1000, epoch=0).producer_epoch == 1


@pytest.mark.parametrize(("version", "abort_epoch"), [(0, 1), (2, 2)])
def test_init_during_an_open_transaction_fences_and_aborts_it(version: int, abort_epoch: int) -> None:
    """The fence bumps the epoch; with transaction.version 2 the abort bumps it once more (Kafka's
    server-side abort follows the finalized version)."""
    h = Harness(transaction_version=version)
    c = h.coordinator
    h.init()
    c.add_partitions("t", 1000, 0, [TP])
    assert h.init().error == ErrorCode.CONCURRENT_TRANSACTIONS
    assert h.markers == [(1000, abort_epoch, False, frozenset({TP}))]  # aborted with the bumped epoch
    assert c.describe("t").state == "CompleteAbort"
    assert c.add_partitions("t", 1000, 0, [TP]) == ErrorCode.PRODUCER_FENCED  # the zombie
    r = h.init()
    assert (r.error, r.producer_epoch) == (ErrorCode.NONE, abort_epoch + 1)


def test_an_exhausted_epoch_takes_a_new_producer_id() -> None:
    h = Harness()
    h.init()
    txn = h.coordinator.txns["t"]
    txn.producer_epoch = MAX_EPOCH
    r = h.init()
    assert (r.producer_id, r.producer_epoch) == (1001, 0)


def test_failed_markers_keep_the_transaction_preparing_until_they_are_written() -> None:
    h = Harness()
    c = h.coordinator
    h.init()
    c.add_partitions("t", 1000, 0, [TP, ("other", 1)])
    h.fail_markers = {TP}
    assert c.end_txn("t", 1000, 0, commit=True) == ErrorCode.NONE  # PrepareCommit is durable
    assert c.describe("t").state == "PrepareCommit" and c.describe("t").partitions == (TP,)
    assert c.add_partitions("t", 1000, 0, [TP]) == ErrorCode.CONCURRENT_TRANSACTIONS
    assert c.end_txn("t", 1000, 0, commit=True) == ErrorCode.CONCURRENT_TRANSACTIONS
    h.fail_markers = set()
    trio.run(c.tick)
    assert c.describe("t").state == "CompleteCommit"
    assert [m[3] for m in h.markers][-1] == frozenset({TP})


def test_an_asynchronous_marker_writer_completes_the_transaction_when_it_reports() -> None:
    """Cluster mode: the markers go to other brokers, so every partition is pending at first;
    the writer's report completes the transaction, and a stale report (another epoch) is ignored."""
    h = Harness()
    c = h.coordinator
    h.init()
    c.add_partitions("t", 1000, 0, [TP, ("other", 1)])
    h.fail_markers = {TP, ("other", 1)}  # what an asynchronous writer answers: nothing written yet
    assert c.end_txn("t", 1000, 0, commit=True) == ErrorCode.NONE
    assert c.describe("t").state == "PrepareCommit"
    c.markers_written("t", 1000, 1, set())  # another epoch's report
    assert c.describe("t").state == "PrepareCommit"
    c.markers_written("t", 1000, 0, {("other", 1)})  # one written, one still pending
    assert c.describe("t").state == "PrepareCommit" and c.describe("t").partitions == (("other", 1),)
    c.markers_written("t", 1000, 0, set())
    assert c.describe("t").state == "CompleteCommit" and c.describe("t").partitions == ()
    assert _stored(h)[-1].state == TxnState.COMPLETE_COMMIT


def test_a_failed_log_write_changes_nothing() -> None:
    h = Harness()
    c = h.coordinator
    h.init()
    h.fail_appends = True
    assert c.add_partitions("t", 1000, 0, [TP]) == ErrorCode.NOT_COORDINATOR
    assert c.describe("t").state == "Empty"
    assert h.init().error == ErrorCode.NOT_COORDINATOR and c.describe("t").producer_epoch == 0


def test_timeouts_abort_and_idle_ids_expire() -> None:
    h = Harness(TxnLimits(id_expiration_ms=1000))
    c = h.coordinator
    h.init(timeout_ms=100)
    c.add_partitions("t", 1000, 0, [TP])
    start = c.txns["t"].start_ms
    trio.run(c.tick, start + 50)
    assert c.describe("t").state == "Ongoing"
    trio.run(c.tick, start + 101)
    # fenced (epoch 1) and aborted with transaction.version 2's bump (epoch 2), as Kafka's timeout abort
    assert c.describe("t").state == "CompleteAbort" and c.describe("t").producer_epoch == 2
    trio.run(c.tick, c.txns["t"].last_update_ms + 1001)
    assert c.describe("t").error == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
    assert h.reloaded().txns == {}  # the tombstone is replayed too


def test_replay_rebuilds_the_state_and_completes_a_prepared_transaction() -> None:
    h = Harness()
    c = h.coordinator
    h.init()
    c.add_partitions("t", 1000, 0, [TP])
    h.fail_markers = {TP}
    c.end_txn("t", 1000, 0, commit=False)
    reloaded = h.reloaded()
    assert reloaded.status("t") == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert reloaded.describe("t").error == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert reloaded.txns["t"].state == TxnState.PREPARE_ABORT
    reloaded.finish_load(0)  # completes it: markers again, then CompleteAbort
    assert reloaded.describe("t").state == "CompleteAbort"
    reloaded.unload(0)
    assert reloaded.status("t") == ErrorCode.NOT_COORDINATOR and reloaded.txns == {}


def test_list_filters_and_verify() -> None:
    h = Harness()
    c = h.coordinator
    h.init("a")
    h.init("b")
    c.add_partitions("b", 1001, 0, [TP])
    assert [d.transactional_id for d in c.list(["Ongoing"])] == ["b"]
    assert [d.transactional_id for d in c.list(producer_ids=[1000])] == ["a"]
    assert c.verify_partitions("b", 1001, 0, [TP, ("x", 0)]) == (
        ErrorCode.NONE, {TP: ErrorCode.NONE, ("x", 0): ErrorCode.TRANSACTION_ABORTABLE})
    assert c.verify_partitions("a", 1000, 0, [TP])[1] == {TP: ErrorCode.TRANSACTION_ABORTABLE}


@pytest.mark.parametrize("state", list(TxnState))
def test_stored_values_round_trip(state: TxnState) -> None:
    stored = StoredTxn(7, 3, 60000, state, frozenset({("a", 0), ("a", 2), ("b", 1)}), 1234, 1200)
    assert decode_value(encode_value(stored)) == stored
