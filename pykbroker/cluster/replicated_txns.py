"""What a follower learns from the batches it copies: producer state, and the aborted transactions
its ABORT markers end, indexed as the leader indexed them (Kafka's follower appends go through the
same producer-state and transaction-index path), so that read_committed consumers skip aborted
records on this replica once it leads, after a failover."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..log.cleaner_filter import control_type
from ..log.txn_index import AbortedTxn
from ..protocol.batch_rewrite import record_spans
from ..protocol.records import CONTROL_TYPE_ABORT, NO_PRODUCER_ID, EndTxnMarkerSchema, decode_records, iter_batches

if TYPE_CHECKING:
    from .partition import Partition


def apply_replicated(p: "Partition", batches: memoryview) -> None:
    """Replay the copied batches' headers (offsets as the leader assigned them)."""
    for pos, h in iter_batches(batches):
        if not (h.is_control and h.producer_id != NO_PRODUCER_ID):
            p.producers.rebuild([h])
            continue
        batch = batches[pos:pos + h.batch_length + 12]
        first = p.producers.complete_txn(h.producer_id, h.producer_epoch, h.max_timestamp, _coordinator_epoch(batch))
        if first is None:
            continue
        _, _, spans = record_spans(batch)
        if control_type(spans) == CONTROL_TYPE_ABORT:
            p.log.index_aborted(AbortedTxn(h.producer_id, first, h.base_offset, p.last_stable_offset))


def _coordinator_epoch(batch: memoryview) -> int | None:
    """The coordinator epoch the marker carries (EndTxnMarker's value), None if it has none."""
    records = decode_records(batch)
    if not records or records[0].value is None:
        return None
    return int(EndTxnMarkerSchema.parse(bytes(records[0].value)).coordinator_epoch)
