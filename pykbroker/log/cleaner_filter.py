"""What the cleaner keeps of each batch: Kafka's ``Cleaner.cleanInto`` record filter, batch by batch.

A record is kept when it is the latest of its key (by the offset map), or newer than anything the
map covers; a tombstone (null value) only until its batch's delete horizon has passed. Records
without a key are dropped (a compacted topic should not hold any).

Transactions (``TxnTracker``, Kafka's ``CleanedTransactionMetadata``): batches of aborted
transactions go; an ABORT marker stays while records of its transaction were seen in this pass
(its index entry is written to the cleaned segment), a COMMIT marker while records of its
transaction were; a marker that may go gets a delete horizon first and goes once it has passed,
as tombstones do.

Batches are kept *empty* rather than removed when they are the last data batch of a producer
still known to the producer state (its sequence number is what the next produce is checked
against), a marker that is a producer's last entry (its epoch fences), or the last batch of the
cleaning round (it keeps the log's offsets). A batch that loses nothing and needs no new delete
horizon is copied byte for byte.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from pykbroker.log.offset_map import OffsetMap
from pykbroker.log.txn_index import AbortedTxn
from pykbroker.protocol.batch_rewrite import RecordSpan, delete_horizon_ms, empty_batch, rebuild_batch, record_spans
from pykbroker.protocol.records import CONTROL_TYPE_ABORT, CONTROL_TYPE_COMMIT, NO_PRODUCER_ID, BatchHeader

_CONTROL_KEY = struct.Struct(">hh")


def control_type(spans: list[RecordSpan]) -> int | None:
    """The control record's type (0 abort, 1 commit), None for an empty control batch."""
    if not spans or spans[0].key is None or len(spans[0].key) < _CONTROL_KEY.size:
        return None
    return _CONTROL_KEY.unpack_from(spans[0].key)[1]


@dataclass
class _Aborted:
    txn: AbortedTxn
    last_observed_batch_offset: int | None = None


@dataclass
class TxnTracker:
    """Open transactions while the cleaner walks the log in offset order."""

    _pending: deque[AbortedTxn] = field(default_factory=deque)
    _aborted: dict[int, _Aborted] = field(default_factory=dict)
    _committed: set[int] = field(default_factory=set)
    #: ABORT markers kept in the segment being written: its transaction index entries.
    kept_aborted: list[AbortedTxn] = field(default_factory=list)

    @classmethod
    def of(cls, aborted: Iterable[AbortedTxn]) -> TxnTracker:
        return cls(deque(sorted(set(aborted), key=lambda t: (t.first_offset, t.last_offset))))

    def _consume_up_to(self, offset: int) -> None:
        pending = self._pending
        while pending and pending[0].first_offset <= offset:
            txn = pending.popleft()
            self._aborted.setdefault(txn.producer_id, _Aborted(txn))

    def on_batch(self, h: BatchHeader) -> bool:
        """A data batch; True when it belongs to an aborted transaction (it may be discarded)."""
        self._consume_up_to(h.last_offset)
        if not h.is_transactional:
            return False
        aborted = self._aborted.get(h.producer_id)
        if aborted is not None:
            aborted.last_observed_batch_offset = h.last_offset
            return True
        self._committed.add(h.producer_id)
        return False

    def on_control_batch(self, h: BatchHeader, kind: int | None) -> bool:
        """A marker; True when it may be discarded (once its delete horizon has passed)."""
        self._consume_up_to(h.last_offset)
        if kind is None:
            return True  # emptied by an earlier cleaning
        if kind == CONTROL_TYPE_ABORT:
            aborted = self._aborted.pop(h.producer_id, None)
            if aborted is not None and aborted.last_observed_batch_offset is not None:
                self.kept_aborted.append(aborted.txn)
                return False
            return True
        if kind == CONTROL_TYPE_COMMIT:
            if h.producer_id in self._committed:
                self._committed.discard(h.producer_id)
                return False
            return True
        return False


@dataclass(frozen=True)
class BatchFilter:
    """The fixed facts of one cleaning round that each batch is judged by."""

    offsets: OffsetMap
    #: Producer id -> (last offset of its last data batch or None, epoch): see ProducerStateManager.last_records.
    last_records: dict[int, tuple[int | None, int]]
    #: Offset after the last batch of the round (its last batch is always kept).
    upper_bound: int
    now_ms: int
    delete_retention_ms: int

    def _is_last_of_producer(self, h: BatchHeader) -> bool:
        last = self.last_records.get(h.producer_id)
        if last is None:
            return False
        last_data_offset, epoch = last
        if last_data_offset is not None:
            return h.last_offset == last_data_offset
        return h.is_control and h.producer_epoch == epoch

    def _retain_record(self, offset: int, s: RecordSpan, horizon: int | None) -> bool:
        if offset > self.offsets.latest_offset:
            return True
        if s.key is None:
            return False
        if offset < self.offsets.get(s.key):
            return False
        return s.has_value or horizon is None or self.now_ms < horizon

    def clean(self, batch: bytes | memoryview, txns: TxnTracker) -> bytes | memoryview | None:
        """The batch as the cleaned segment stores it, or None when it goes."""
        h, payload, spans = record_spans(batch)
        horizon = delete_horizon_ms(h)
        if h.is_control:
            can_discard = txns.on_control_batch(h, control_type(spans))
            discard_records = can_discard and horizon is not None and horizon <= self.now_ms
        else:
            can_discard = txns.on_batch(h)
            discard_records = can_discard
        retain_empty = (h.producer_id != NO_PRODUCER_ID and self._is_last_of_producer(h)) \
            or h.next_offset == self.upper_bound
        if discard_records and not retain_empty:
            return None
        if discard_records:
            kept: list[RecordSpan] = []
        elif h.is_control:
            kept = spans
        else:
            kept = [s for s in spans if self._retain_record(h.base_offset + s.offset_delta, s, horizon)]
        if not kept:
            if not retain_empty:
                return None
            return batch if h.records_count == 0 else empty_batch(h)
        needs_horizon = horizon is None and (
            (h.is_control and can_discard) or any(not s.has_value for s in kept))
        if len(kept) == len(spans) and not needs_horizon:
            return batch
        new_horizon = self.now_ms + self.delete_retention_ms if needs_horizon else horizon
        return rebuild_batch(h, payload, kept, delete_horizon=new_horizon)
