"""The transaction coordinator: Kafka's TransactionCoordinator state machine, keyed by transactional id.

Each transactional id lives on partition ``partition_for(id)`` of __transaction_state. Every state
change is written there first (``transaction_log``) and applied after the write succeeded, so
replaying the partition rebuilds the same state; loading and unloading work per partition, as
the group coordinator's do.

The states and transitions are Kafka's:

    Empty/CompleteCommit/CompleteAbort --AddPartitions--> Ongoing --EndTxn--> PrepareCommit/PrepareAbort
    PrepareCommit/PrepareAbort --markers written to every partition--> CompleteCommit/CompleteAbort

InitProducerId bumps the producer epoch (a new producer id when the epoch is exhausted), which
fences an older producer with the same id; an Ongoing transaction of the previous epoch is aborted
with the bumped epoch first, and the caller is told CONCURRENT_TRANSACTIONS to retry. A transaction
open longer than its timeout is aborted the same way. The markers are written by ``write_markers``,
a function the broker provides (the coordinator never sees a partition).

Transactions v2 (KIP-890 part 2, a client on EndTxn v5 with transaction.version 2 finalized):
partitions join implicitly (the produce path and TxnOffsetCommit v5+ call ``add_partitions`` with
``client_version=2``), and every EndTxn bumps the epoch: PrepareCommit/PrepareAbort carry epoch + 1,
the markers are written with it, and the client is answered with it, so a zombie of the previous
transaction is fenced. When that bump would exhaust the epoch, the Prepare state names the next
producer id and the Complete state switches to it at epoch 0 (Kafka's prepareAbortOrCommit /
prepareComplete). Retries are told apart by epoch: a v2 EndTxn with the epoch just before the
current one is a retry of the one that completed. Fencing (InitProducerId, timeouts) follows the
finalized ``transaction_version``, as Kafka's server-side abort does.
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
#: Short.MAX_VALUE: only a fence or a v2 abort may reach it; never bumped past.
EPOCH_CEILING = 32767
#: transaction.version 2: the epoch is bumped on every commit/abort (TransactionVersion.supportsEpochBump).
TV2 = 2
COORDINATOR_EPOCH = 0  # the leader epoch of the __transaction_state partition: one node, epoch 0

TopicPartition = tuple[str, int]
#: (transactional id, producer id, epoch, commit?, coordinator epoch, partitions) -> partitions whose
#: marker is not written (failed, or, for a writer that sends them to other brokers, not yet: it
#: reports them later through ``markers_written``).
MarkerWriter = Callable[[str, int, int, bool, int, frozenset[TopicPartition]], set[TopicPartition]]

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
    #: The producer id before the last transition (a v2 retry after a rotation names it).
    prev_producer_id: int = NO_PRODUCER_ID
    #: The producer id the Complete state rotates to (v2, epoch exhausted); -1: none.
    next_producer_id: int = NO_PRODUCER_ID
    #: The transaction.version the client used in the last transition (0: v1).
    client_version: int = 0
    #: The epoch before the last bump a client may still retry with (Kafka's lastProducerEpoch:
    #: kept in memory only, -1 after a reload, as Kafka's log does not hold it).
    last_producer_epoch: int = NO_PRODUCER_EPOCH

    def stored(self, **changes: object) -> StoredTxn:
        base = StoredTxn(self.producer_id, self.producer_epoch, self.timeout_ms, self.state,
                         frozenset(self.partitions), self.last_update_ms, self.start_ms,
                         self.prev_producer_id, self.next_producer_id, self.client_version)
        return base._replace(**changes)  # type: ignore[arg-type]

    def apply(self, stored: StoredTxn) -> None:
        self.producer_id, self.producer_epoch, self.timeout_ms = stored.producer_id, stored.producer_epoch, stored.timeout_ms
        self.state, self.partitions = stored.state, set(stored.partitions)
        self.last_update_ms, self.start_ms = stored.last_update_ms, stored.start_ms
        self.prev_producer_id, self.next_producer_id = stored.prev_producer_id, stored.next_producer_id
        self.client_version = stored.client_version


class InitPidResult(NamedTuple):
    error: ErrorCode
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH


class EndTxnResult(NamedTuple):
    """EndTxn's answer; v5 returns the producer id and epoch the client continues with."""

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
                 new_producer_id: Callable[[], Awaitable[int]], limits: TxnLimits = TxnLimits(),
                 transaction_version: int = TV2) -> None:
        self._append = append
        #: The finalized transaction.version: the log value version written (v1 from level 1) and
        #: the rules of the coordinator's own aborts.
        self.transaction_version = transaction_version
        self.partitions = partitions
        self._write_markers = write_markers
        self._new_producer_id = new_producer_id
        self.limits = limits
        self.txns: dict[str, TxnMetadata] = {}
        self._loads: dict[int, Load] = {}
        #: Transactions v2 at work (for operators and tests): partitions added by a v2 add, and
        #: transactions ended by EndTxn v5 with an epoch bump.
        self.v2_partition_adds = 0
        self.v2_epoch_bumps = 0

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

    def _write(self, txn: TxnMetadata, stored: StoredTxn | None, last_epoch: int | None = None) -> ErrorCode:
        """Append the transaction's new state, then apply it: a write that failed changes nothing.
        Every transition records the producer id it leaves as the previous one (Kafka's transit)."""
        if stored is not None and txn.producer_id >= 0:
            stored = stored._replace(prev_producer_id=txn.producer_id)
        value = None if stored is None else encode_value(stored, 1 if self.transaction_version >= 1 else 0)
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
            if last_epoch is not None:
                txn.last_producer_epoch = last_epoch
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
        expected = expected_pid != NO_PRODUCER_ID
        if expected and not (txn.producer_epoch == NO_PRODUCER_EPOCH or expected_pid == txn.producer_id or (
                expected_pid == txn.prev_producer_id and expected_epoch >= MAX_EPOCH)):
            # KIP-360: only the current producer may bump (or one retrying across an id rotation)
            return InitPidResult(ErrorCode.PRODUCER_FENCED)
        if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            self._complete(txn)  # markers that failed earlier: try again; the client retries meanwhile
            return InitPidResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        if txn.state == TxnState.ONGOING:
            # A zombie's transaction: fence it with a bumped epoch and abort it; the caller retries.
            code = await self._abort_fenced(txn)
            return InitPidResult(code or ErrorCode.CONCURRENT_TRANSACTIONS)
        current = txn.producer_epoch
        if current >= MAX_EPOCH and (not expected or expected_epoch == current):
            pid, epoch, last = await self._new_producer_id(), 0, current if expected else NO_PRODUCER_EPOCH
        elif not expected:
            pid, epoch, last = txn.producer_id, current + 1, NO_PRODUCER_EPOCH
        elif current == NO_PRODUCER_EPOCH or expected_epoch == current:
            pid, epoch, last = txn.producer_id, current + 1, current
        elif expected_epoch == txn.last_producer_epoch:
            # Kafka's prepareIncrementProducerEpoch: a retry of a call that succeeded (or of an
            # EndTxn v5 that bumped or rotated): the current epoch, not bumped again
            pid, epoch, last = txn.producer_id, current, txn.last_producer_epoch
        else:
            return InitPidResult(ErrorCode.PRODUCER_FENCED)
        now = now_ms()
        code = self._write(txn, txn.stored(producer_id=pid, producer_epoch=epoch, timeout_ms=timeout_ms,
                                           state=TxnState.EMPTY, partitions=frozenset(), last_update_ms=now,
                                           start_ms=-1, next_producer_id=NO_PRODUCER_ID), last_epoch=last)
        if code:
            return InitPidResult(code)
        log.info("transactional id %s: producer id %d epoch %d", transactional_id, pid, epoch)
        return InitPidResult(ErrorCode.NONE, pid, epoch)

    async def _abort_fenced(self, txn: TxnMetadata) -> ErrorCode:
        """Bump the epoch (fencing the producer) and abort its open transaction with it. Under
        transaction.version 2 the abort bumps once more, as any v2 abort does (Kafka 4.4's
        endTransaction with the server's version after prepareFenceProducerEpoch), never past
        Short.MAX_VALUE, and an exhausted epoch rotates the producer id at completion here too."""
        if self.transaction_version < TV2:
            if txn.producer_epoch >= MAX_EPOCH:
                return ErrorCode.PRODUCER_FENCED  # Kafka cannot fence further either; the transaction times out
            return self._prepare_end(txn, commit=False, epoch=txn.producer_epoch + 1, last_epoch=NO_PRODUCER_EPOCH)
        next_pid, code = await self._next_producer_id_if_exhausted(txn)
        if code:
            return code
        fenced = min(txn.producer_epoch + 1, EPOCH_CEILING)
        return self._prepare_end(txn, commit=False, epoch=min(fenced + 1, EPOCH_CEILING), client_version=TV2,
                                 next_producer_id=next_pid, last_epoch=fenced)

    async def _next_producer_id_if_exhausted(self, txn: TxnMetadata) -> tuple[int, ErrorCode]:
        """The producer id a v2 end rotates to when its epoch is exhausted (-1: none needed).
        CONCURRENT_TRANSACTIONS if the transaction changed while the id was allocated."""
        if txn.producer_epoch < MAX_EPOCH:
            return NO_PRODUCER_ID, ErrorCode.NONE
        before = (txn.state, txn.producer_id, txn.producer_epoch)
        try:
            next_pid = await self._new_producer_id()
        except Exception as e:  # noqa: BLE001 - answered as Kafka answers a failed id allocation
            return NO_PRODUCER_ID, append_error(e)
        if self.txns.get(txn.transactional_id) is not txn or (txn.state, txn.producer_id, txn.producer_epoch) != before:
            return NO_PRODUCER_ID, ErrorCode.CONCURRENT_TRANSACTIONS
        return next_pid, ErrorCode.NONE

    # ------------------------------------------------------------------ AddPartitions / AddOffsets

    def add_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                       partitions: Iterable[TopicPartition], client_version: int = 0) -> ErrorCode:
        """AddPartitionsToTxn/AddOffsetsToTxn (v1), or the implicit add of a v2 Produce or
        TxnOffsetCommit (``client_version`` 2, recorded with the transaction as Kafka does)."""
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
        code = self._write(txn, txn.stored(state=TxnState.ONGOING, partitions=frozenset(txn.partitions | wanted),
                                           last_update_ms=now, start_ms=start, client_version=client_version))
        if not code and client_version >= TV2:
            self.v2_partition_adds += 1
        return code

    def verify_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                          partitions: Iterable[TopicPartition]) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """AddPartitionsToTxn v4+ verify-only, and the v1 produce path's check: is each partition in the
        producer's transaction? Kafka's handleVerifyPartitionsInTransaction: CONCURRENT_TRANSACTIONS
        while it is being completed, TRANSACTION_ABORTABLE for a partition not in it (the caller turns
        that into INVALID_TXN_STATE for clients older than KIP-890's error)."""
        code, txn = self._check(transactional_id, producer_id, epoch)
        if txn is None:
            return code, {}
        if txn.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            return ErrorCode.CONCURRENT_TRANSACTIONS, {}
        return ErrorCode.NONE, {tp: ErrorCode.NONE if tp in txn.partitions else ErrorCode.TRANSACTION_ABORTABLE
                                for tp in partitions}

    # ------------------------------------------------------------------ EndTxn

    def end_txn(self, transactional_id: str, producer_id: int, epoch: int, commit: bool) -> ErrorCode:
        """EndTxn v0-4 (transactions v1): the epoch stays; a retry names the same epoch."""
        code, txn = self._check(transactional_id, producer_id, epoch)
        if txn is None:
            return code
        state = txn.state
        if state == TxnState.ONGOING:
            return self._prepare_end(txn, commit, client_version=0)
        if state == (TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT):
            return ErrorCode.NONE  # a retry of an EndTxn that completed
        if state == (TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT):
            self._complete(txn)
            return ErrorCode.CONCURRENT_TRANSACTIONS
        return ErrorCode.INVALID_TXN_STATE

    async def end_txn_v2(self, transactional_id: str, producer_id: int, epoch: int, commit: bool) -> EndTxnResult:
        """EndTxn v5 (transactions v2): Kafka's endTransaction for a client on TV2, whose table is

            state           abort: retry / current     commit: retry / current
            Empty           PRODUCER_FENCED / bump     PRODUCER_FENCED / INVALID_TXN_STATE
            CompleteAbort   NONE / bump                INVALID_TXN_STATE / INVALID_TXN_STATE
            CompleteCommit  INVALID_TXN_STATE / bump   NONE / INVALID_TXN_STATE

        where a retry names the epoch before the current one (or the exhausted epoch of the producer
        id just rotated away from). Answers with the producer id and epoch to continue with."""
        code = self.status(transactional_id)
        txn = self.txns.get(transactional_id)
        if code or txn is None:
            return EndTxnResult(code or ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        state = txn.state
        retry_on_overflow = (txn.prev_producer_id == producer_id and epoch == MAX_EPOCH and txn.producer_epoch == 0)
        retry = txn.producer_epoch == epoch + 1 or retry_on_overflow
        if state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            valid = txn.producer_epoch == epoch + 1
        elif state in (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT):
            valid = retry or epoch == txn.producer_epoch
        else:
            valid = epoch == txn.producer_epoch
        if txn.producer_id != producer_id and not retry_on_overflow:
            return EndTxnResult(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if not valid:
            return EndTxnResult(ErrorCode.PRODUCER_FENCED)
        if state == TxnState.ONGOING:
            return await self._end_v2(txn, commit, no_partitions=False)
        if state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            if (state == TxnState.PREPARE_COMMIT) != commit:
                return EndTxnResult(ErrorCode.INVALID_TXN_STATE)
            self._complete(txn)
            return EndTxnResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        if retry:
            if state == done:
                return EndTxnResult(ErrorCode.NONE, txn.producer_id, txn.producer_epoch)
            return EndTxnResult(ErrorCode.INVALID_TXN_STATE)
        if commit:
            return EndTxnResult(ErrorCode.INVALID_TXN_STATE)
        return await self._end_v2(txn, commit=False, no_partitions=True)  # v2 may abort with nothing added

    async def _end_v2(self, txn: TxnMetadata, commit: bool, no_partitions: bool) -> EndTxnResult:
        """PrepareCommit/PrepareAbort at epoch + 1 (never past Short.MAX_VALUE, where Kafka lets only
        an abort through unbumped), naming the next producer id when the bump exhausts the epoch."""
        next_pid, code = await self._next_producer_id_if_exhausted(txn)
        if code:
            return EndTxnResult(code)
        epoch = min(txn.producer_epoch + 1, EPOCH_CEILING)
        code = self._prepare_end(txn, commit, epoch=epoch, client_version=TV2, next_producer_id=next_pid,
                                 start_ms=now_ms() if no_partitions else None, last_epoch=txn.producer_epoch)
        if code:
            return EndTxnResult(code)
        self.v2_epoch_bumps += 1
        if txn.next_producer_id != NO_PRODUCER_ID:  # markers pending: what the Complete state will hold
            return EndTxnResult(ErrorCode.NONE, txn.next_producer_id, 0)
        return EndTxnResult(ErrorCode.NONE, txn.producer_id, txn.producer_epoch)

    def _prepare_end(self, txn: TxnMetadata, commit: bool, epoch: int | None = None, client_version: int | None = None,
                     next_producer_id: int = NO_PRODUCER_ID, start_ms: int | None = None,
                     last_epoch: int | None = None) -> ErrorCode:
        """PrepareCommit/PrepareAbort written (with a bumped `epoch` when fencing or on v2), then the
        markers and the Complete state."""
        state = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        code = self._write(txn, txn.stored(
            state=state, last_update_ms=now_ms(), producer_epoch=txn.producer_epoch if epoch is None else epoch,
            client_version=txn.client_version if client_version is None else client_version,
            next_producer_id=next_producer_id, start_ms=txn.start_ms if start_ms is None else start_ms),
            last_epoch=last_epoch)
        if code:
            return code
        self._complete(txn)
        return ErrorCode.NONE

    def _complete(self, txn: TxnMetadata) -> None:
        """Write the markers (WriteTxnMarkers, inside the broker), then CompleteCommit/CompleteAbort.
        Partitions whose marker failed stay, and are tried again by ``tick``."""
        commit = txn.state == TxnState.PREPARE_COMMIT
        pending = self._write_markers(txn.transactional_id, txn.producer_id, txn.producer_epoch, commit,
                                      COORDINATOR_EPOCH, frozenset(txn.partitions))
        self._markers_done(txn, pending)

    def markers_written(self, transactional_id: str, producer_id: int, epoch: int,
                        pending: set[TopicPartition]) -> None:
        """An asynchronous marker writer's report: every marker of the transaction of ``producer_id``
        at ``epoch`` is written except ``pending``'s (``tick`` retries those)."""
        txn = self.txns.get(transactional_id)
        if txn is None or txn.state not in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT) or \
                (txn.producer_id, txn.producer_epoch) != (producer_id, epoch) or \
                self._loads.get(self.partition_for(transactional_id)) is not Load.LOADED:
            return  # completed, fenced or moved meanwhile: nothing of this report applies
        self._markers_done(txn, pending & txn.partitions)

    def _markers_done(self, txn: TxnMetadata, pending: set[TopicPartition]) -> None:
        if pending:
            txn.partitions = set(pending)
            log.debug("transactional id %s: markers pending on %s", txn.transactional_id,
                      ", ".join(f"{t}-{p}" for t, p in sorted(pending)))
            return
        commit = txn.state == TxnState.PREPARE_COMMIT
        done = TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT
        rotate = txn.client_version >= TV2 and txn.next_producer_id != NO_PRODUCER_ID
        self._write(txn, txn.stored(state=done, partitions=frozenset(), last_update_ms=now_ms(),
                                    producer_id=txn.next_producer_id if rotate else txn.producer_id,
                                    producer_epoch=0 if rotate else txn.producer_epoch,
                                    next_producer_id=NO_PRODUCER_ID))

    # ------------------------------------------------------------------ timers

    async def tick(self, now: int | None = None) -> None:
        """Abort transactions open past their timeout (with a bumped epoch, fencing the producer, as
        Kafka does), retry pending markers, and expire idle transactional ids."""
        now = now_ms() if now is None else now
        for txn in list(self.txns.values()):
            if self.txns.get(txn.transactional_id) is not txn or \
                    self._loads.get(self.partition_for(txn.transactional_id)) is not Load.LOADED:
                continue  # gone or unloaded while an earlier abort awaited a producer id
            if txn.state == TxnState.ONGOING and txn.start_ms + txn.timeout_ms < now:
                log.info("transactional id %s: aborting the transaction open for %d ms (timeout %d ms)",
                         txn.transactional_id, now - txn.start_ms, txn.timeout_ms)
                await self._abort_fenced(txn)
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
