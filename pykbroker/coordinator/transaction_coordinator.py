"""The transaction coordinator: Kafka's TransactionCoordinator state machine, keyed by transactional id.

Each transactional id lives on partition ``partition_for(id)`` of __transaction_state. Every state
change is written there first (``transaction_log``) and applied after the write succeeded, so
replaying the partition rebuilds the same state; loading and unloading work per partition, as
the group coordinator's do.

The states and transitions are Kafka's (transaction protocol v1):

    Empty/CompleteCommit/CompleteAbort --AddPartitions--> Ongoing --EndTxn--> PrepareCommit/PrepareAbort
    PrepareCommit/PrepareAbort --markers written to every partition--> CompleteCommit/CompleteAbort

InitProducerId bumps the producer epoch (a new producer id when the epoch is exhausted), which
fences an older producer with the same id; an Ongoing transaction of the previous epoch is aborted
with the bumped epoch first, and the caller is told CONCURRENT_TRANSACTIONS to retry. A transaction
open longer than its timeout is aborted the same way. The markers are written by ``write_markers``,
a function the broker provides (the coordinator never sees a partition).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from ..protocol.errors import ErrorCode
from ..protocol.records import decode_records
from .offsets import records_batch
from .ownership import Load, append_error, availability, partition_for
from .transaction_log import StoredTxn, TxnState, decode_key, decode_value, encode_key, encode_value

log = logging.getLogger("pykbroker.txn")

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
#: Kafka bumps to a new producer id once the epoch reaches Short.MAX_VALUE - 1.
MAX_EPOCH = 32766
COORDINATOR_EPOCH = 0  # the leader epoch of the __transaction_state partition: one node, epoch 0

TopicPartition = tuple[str, int]
#: (producer id, epoch, commit?, coordinator epoch, partitions) -> partitions whose marker failed.
MarkerWriter = Callable[[int, int, bool, int, frozenset[TopicPartition]], set[TopicPartition]]

_COMPLETED = (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


@dataclass
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: set[TopicPartition] = field(default_factory=set)
    start_ms: int = -1
    last_update_ms: int = -1

    def stored(self, **changes: object) -> StoredTxn:
        base = StoredTxn(self.producer_id, self.producer_epoch, self.timeout_ms, self.state,
                         frozenset(self.partitions), self.last_update_ms, self.start_ms)
        return base._replace(**changes)  # type: ignore[arg-type]

    def apply(self, stored: StoredTxn) -> None:
        self.producer_id, self.producer_epoch, self.timeout_ms = stored.producer_id, stored.producer_epoch, stored.timeout_ms
        self.state, self.partitions = stored.state, set(stored.partitions)
        self.last_update_ms, self.start_ms = stored.last_update_ms, stored.start_ms


class InitPidResult(NamedTuple):
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


class TxnDescription(NamedTuple):
    error: ErrorCode
    transactional_id: str
    state: str = ""
    timeout_ms: int = 0
    start_ms: int = -1
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    partitions: tuple[TopicPartition, ...] = ()


@dataclass(frozen=True)
class TxnLimits:
    max_timeout_ms: int = 900_000
    id_expiration_ms: int = 604_800_000


def now_ms() -> int:
    return int(time.time() * 1000)


class TransactionCoordinator:
    def __init__(self, append: Callable[[int, bytes], None], partitions: int, write_markers: MarkerWriter,
                 new_producer_id: Callable[[], Awaitable[int]], limits: TxnLimits = TxnLimits()) -> None:
        self._append = append
        self.partitions = partitions
        self._write_markers = write_markers
        self._new_producer_id = new_producer_id
        self.limits = limits
        self.txns: dict[str, TxnMetadata] = {}
        self._loads: dict[int, Load] = {}

    # ------------------------------------------------------------------ ownership

    def partition_for(self, transactional_id: str) -> int:
        return partition_for(transactional_id, self.partitions)

    def status(self, transactional_id: str) -> ErrorCode:
        return availability(self._loads.get(self.partition_for(transactional_id)))

    def begin_load(self, partition: int) -> None:
        self._loads[partition] = Load.LOADING

    def replay(self, partition: int, batches: Iterable[bytes]) -> int:
        """Apply stored records of a loading partition (oldest first); returns the batch count."""
        count = 0
        for batch in batches:
            count += 1
            for record in decode_records(batch):
                if record.key is None:
                    continue
                try:
                    txn_id = decode_key(record.key)
                    stored = None if record.value is None else decode_value(record.value)
                except (ValueError, KeyError) as e:
                    log.warning("__transaction_state-%d: skipped an unreadable record: %s", partition, e)
                    continue
                if stored is None:
                    self.txns.pop(txn_id, None)
                else:
                    self.txns.setdefault(txn_id, TxnMetadata(txn_id, -1, -1, 0)).apply(stored)
        return count

    def finish_load(self, partition: int) -> None:
        """Serve the partition; transactions that were being completed are completed now."""
        if self._loads.get(partition) is not Load.LOADING:
            return
        self._loads[partition] = Load.LOADED
        for txn in list(self.txns.values()):
            if self.partition_for(txn.transactional_id) == partition and txn.state in (
                    TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                self._complete(txn)

    def unload(self, partition: int) -> None:
        self._loads.pop(partition, None)
        for txn_id in [t for t in self.txns if self.partition_for(t) == partition]:
            del self.txns[txn_id]

    # ------------------------------------------------------------------ writes

    def _write(self, txn: TxnMetadata, stored: StoredTxn | None) -> ErrorCode:
        """Append the transaction's new state, then apply it: a write that failed changes nothing."""
        value = None if stored is None else encode_value(stored)
        try:
            self._append(self.partition_for(txn.transactional_id),
                         records_batch([(encode_key(txn.transactional_id), value)]))
        except Exception as e:  # noqa: BLE001 - every failed write is answered
            code = append_error(e)
            log.warning("transactional id %s: write to __transaction_state failed (%s): %s",
                        txn.transactional_id, code.name, e)
            return code
        if stored is None:
            self.txns.pop(txn.transactional_id, None)
        else:
            txn.apply(stored)
        return ErrorCode.NONE

    def _check(self, transactional_id: str, producer_id: int, epoch: int) -> tuple[ErrorCode, TxnMetadata | None]:
        """Kafka's checks shared by AddPartitions, AddOffsets and EndTxn."""
        code = self.status(transactional_id)
        if code:
            return code, None
        txn = self.txns.get(transactional_id)
        if txn is None or txn.producer_id != producer_id:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING, None
        if txn.producer_epoch != epoch:
            return ErrorCode.PRODUCER_FENCED, None
        return ErrorCode.NONE, txn

    # ------------------------------------------------------------------ InitProducerId

    async def init_producer_id(self, transactional_id: str, timeout_ms: int,
                               expected_pid: int = NO_PRODUCER_ID, expected_epoch: int = NO_PRODUCER_EPOCH) -> InitPidResult:
        if timeout_ms <= 0 or timeout_ms > self.limits.max_timeout_ms:
            return InitPidResult(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        code = self.status(transactional_id)
        if code:
            return InitPidResult(code)
        txn = self.txns.get(transactional_id)
        if txn is None:
            pid = await self._new_producer_id()
            txn = self.txns.get(transactional_id)  # another InitProducerId may have won the await
            if txn is None:
                txn = self.txns[transactional_id] = TxnMetadata(transactional_id, pid, NO_PRODUCER_EPOCH, timeout_ms)
        if expected_pid != NO_PRODUCER_ID and (expected_pid, expected_epoch) != (txn.producer_id, txn.producer_epoch):
            return InitPidResult(ErrorCode.PRODUCER_FENCED)  # KIP-360: only the current producer may bump
        if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            self._complete(txn)  # markers that failed earlier: try again; the client retries meanwhile
            return InitPidResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        if txn.state == TxnState.ONGOING:
            # A zombie's transaction: fence it with a bumped epoch and abort it; the caller retries.
            code = self._abort_fenced(txn)
            return InitPidResult(code or ErrorCode.CONCURRENT_TRANSACTIONS)
        pid, epoch = txn.producer_id, txn.producer_epoch + 1
        if epoch > MAX_EPOCH:
            pid, epoch = await self._new_producer_id(), 0
        now = now_ms()
        code = self._write(txn, StoredTxn(pid, epoch, timeout_ms, TxnState.EMPTY, frozenset(), now, -1))
        if code:
            return InitPidResult(code)
        log.info("transactional id %s: producer id %d epoch %d", transactional_id, pid, epoch)
        return InitPidResult(ErrorCode.NONE, pid, epoch)

    def _abort_fenced(self, txn: TxnMetadata) -> ErrorCode:
        """Bump the epoch (fencing the producer) and abort its open transaction with it."""
        if txn.producer_epoch >= MAX_EPOCH:
            return ErrorCode.PRODUCER_FENCED  # Kafka cannot fence further either; the transaction times out
        return self._prepare_end(txn, commit=False, epoch=txn.producer_epoch + 1)

    # ------------------------------------------------------------------ AddPartitions / AddOffsets

    def add_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                       partitions: Iterable[TopicPartition]) -> ErrorCode:
        code, txn = self._check(transactional_id, producer_id, epoch)
        if txn is None:
            return code
        wanted = set(partitions)
        if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            self._complete(txn)
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if txn.state == TxnState.ONGOING and wanted <= txn.partitions:
            return ErrorCode.NONE
        if txn.state not in (*_COMPLETED, TxnState.ONGOING):
            return ErrorCode.CONCURRENT_TRANSACTIONS
        now = now_ms()
        start = txn.start_ms if txn.state == TxnState.ONGOING else now
        return self._write(txn, txn.stored(state=TxnState.ONGOING, partitions=frozenset(txn.partitions | wanted),
                                           last_update_ms=now, start_ms=start))

    def verify_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                          partitions: Iterable[TopicPartition]) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """AddPartitionsToTxn v4+ verify-only, and the produce path's check: is each partition in the
        producer's ongoing transaction? (Kafka: INVALID_TXN_STATE for those that are not.)"""
        code, txn = self._check(transactional_id, producer_id, epoch)
        if txn is None:
            return code, {}
        ongoing = txn.state == TxnState.ONGOING
        return ErrorCode.NONE, {tp: ErrorCode.NONE if ongoing and tp in txn.partitions else ErrorCode.INVALID_TXN_STATE
                                for tp in partitions}

    # ------------------------------------------------------------------ EndTxn

    def end_txn(self, transactional_id: str, producer_id: int, epoch: int, commit: bool) -> ErrorCode:
        code, txn = self._check(transactional_id, producer_id, epoch)
        if txn is None:
            return code
        state = txn.state
        if state == TxnState.ONGOING:
            return self._prepare_end(txn, commit)
        if state == (TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT):
            return ErrorCode.NONE  # a retry of an EndTxn that completed
        if state == (TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT):
            self._complete(txn)
            return ErrorCode.CONCURRENT_TRANSACTIONS
        return ErrorCode.INVALID_TXN_STATE

    def _prepare_end(self, txn: TxnMetadata, commit: bool, epoch: int | None = None) -> ErrorCode:
        """PrepareCommit/PrepareAbort written (with a bumped `epoch` when fencing), then the
        markers and the Complete state."""
        state = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        code = self._write(txn, txn.stored(state=state, last_update_ms=now_ms(),
                                           producer_epoch=txn.producer_epoch if epoch is None else epoch))
        if code:
            return code
        self._complete(txn)
        return ErrorCode.NONE

    def _complete(self, txn: TxnMetadata) -> None:
        """Write the markers (WriteTxnMarkers, inside the broker), then CompleteCommit/CompleteAbort.
        Partitions whose marker failed stay, and are tried again by ``tick``."""
        commit = txn.state == TxnState.PREPARE_COMMIT
        failed = self._write_markers(txn.producer_id, txn.producer_epoch, commit, COORDINATOR_EPOCH,
                                     frozenset(txn.partitions))
        if failed:
            txn.partitions = set(failed)
            log.warning("transactional id %s: markers not written to %s; retrying", txn.transactional_id,
                        ", ".join(f"{t}-{p}" for t, p in sorted(failed)))
            return
        done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        self._write(txn, txn.stored(state=done, partitions=frozenset(), last_update_ms=now_ms()))

    # ------------------------------------------------------------------ timers

    def tick(self, now: int | None = None) -> None:
        """Abort transactions open past their timeout (with a bumped epoch, fencing the producer, as
        Kafka does), retry pending markers, and expire idle transactional ids."""
        now = now_ms() if now is None else now
        for txn in list(self.txns.values()):
            if self._loads.get(self.partition_for(txn.transactional_id)) is not Load.LOADED:
                continue
            if txn.state == TxnState.ONGOING and txn.start_ms + txn.timeout_ms < now:
                log.info("transactional id %s: aborting the transaction open for %d ms (timeout %d ms)",
                         txn.transactional_id, now - txn.start_ms, txn.timeout_ms)
                self._abort_fenced(txn)
            elif txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                self._complete(txn)
            elif txn.state in _COMPLETED and txn.last_update_ms + self.limits.id_expiration_ms < now:
                self._write(txn, None)

    # ------------------------------------------------------------------ admin

    def describe(self, transactional_id: str) -> TxnDescription:
        code = self.status(transactional_id)
        txn = self.txns.get(transactional_id)
        if code or txn is None:
            return TxnDescription(code or ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, transactional_id)
        return TxnDescription(ErrorCode.NONE, transactional_id, txn.state.display, txn.timeout_ms, txn.start_ms,
                              txn.producer_id, txn.producer_epoch, tuple(sorted(txn.partitions)))

    def open_transactions(self) -> int:
        """Transactions begun and not completed (Ongoing or being committed/aborted)."""
        return sum(1 for t in self.txns.values() if t.state not in (*_COMPLETED, TxnState.DEAD))

    def list(self, states: Iterable[str] = (), producer_ids: Iterable[int] = (),
             min_duration_ms: int = -1) -> list[TxnDescription]:
        """ListTransactions' filters: states by Kafka's names, producer ids, open for at least (v1)."""
        wanted_states, wanted_pids = set(states), set(producer_ids)
        now = now_ms()
        out = []
        for txn_id in sorted(self.txns):
            d = self.describe(txn_id)
            if d.error:
                continue
            if wanted_states and d.state not in wanted_states:
                continue
            if wanted_pids and d.producer_id not in wanted_pids:
                continue
            if min_duration_ms >= 0 and (d.start_ms < 0 or now - d.start_ms < min_duration_ms):
                continue
            out.append(d)
        return out
