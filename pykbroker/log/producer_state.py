"""Idempotent-producer state of one partition: the last batches of each producer id.

Kafka's ProducerStateManager in miniature: per producer id the current epoch and the metadata of
its last five batches, so a retried batch is recognised and answered with its original offsets,
and a gap in sequence numbers is refused. State is rebuilt from the log's batch headers on load.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable

from ..protocol.records import BatchHeader

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1
NUM_BATCHES_TO_RETAIN = 5  # Kafka keeps five: the producer's max.in.flight.requests limit
INT32_MAX = 2**31 - 1


class OutOfOrderSequenceError(Exception):
    """OUT_OF_ORDER_SEQUENCE_NUMBER: a batch does not continue its producer's sequence."""


class InvalidProducerEpochError(Exception):
    """INVALID_PRODUCER_EPOCH: a batch from an epoch older than the producer's current one."""


@dataclass(frozen=True)
class BatchMeta:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass
class ProducerEntry:
    epoch: int
    batches: deque[BatchMeta] = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE


def _last_seq(h: BatchHeader) -> int:
    return (h.base_sequence + h.last_offset_delta) % (INT32_MAX + 1)


class ProducerStateManager:
    def __init__(self) -> None:
        self._producers: dict[int, ProducerEntry] = {}

    def rebuild(self, headers: Iterable[BatchHeader]) -> None:
        """Replay stored batch headers (offsets already assigned), as on broker start."""
        for h in headers:
            if h.producer_id != NO_PRODUCER_ID and h.base_sequence != NO_SEQUENCE and not h.is_control:
                self.record(h, h.base_offset)

    def check(self, h: BatchHeader) -> BatchMeta | None:
        """Before an append: the original batch if `h` duplicates a recent one, else None.

        Raises OutOfOrderSequenceError / InvalidProducerEpochError as Kafka would.
        """
        if h.producer_id == NO_PRODUCER_ID or h.base_sequence == NO_SEQUENCE:
            return None
        entry = self._producers.get(h.producer_id)
        if entry is None:
            # Unknown producer (new, or its state expired): Kafka accepts the batch and starts
            # tracking from it (KIP-360), so a producer is not stuck after its state expires.
            return None
        if h.producer_epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"producer {h.producer_id} epoch {h.producer_epoch} is older than the current epoch {entry.epoch}")
        if h.producer_epoch > entry.epoch:
            if h.base_sequence != 0:
                raise OutOfOrderSequenceError(
                    f"producer {h.producer_id} new epoch {h.producer_epoch} must start at sequence 0, "
                    f"got {h.base_sequence}")
            return None
        last = _last_seq(h)
        for b in entry.batches:
            if b.first_seq == h.base_sequence and b.last_seq == last:
                return b
        expected = (entry.last_seq + 1) % (INT32_MAX + 1)
        if entry.batches and h.base_sequence != expected:
            raise OutOfOrderSequenceError(
                f"producer {h.producer_id} epoch {h.producer_epoch}: sequence {h.base_sequence} "
                f"does not follow {entry.last_seq} (expected {expected})")
        return None

    def record(self, h: BatchHeader, first_offset: int) -> None:
        """After an append: remember the batch (its offsets as assigned by the log)."""
        if h.producer_id == NO_PRODUCER_ID or h.base_sequence == NO_SEQUENCE:
            return
        entry = self._producers.get(h.producer_id)
        if entry is None or h.producer_epoch > entry.epoch:
            entry = self._producers[h.producer_id] = ProducerEntry(h.producer_epoch)
        entry.batches.append(BatchMeta(h.base_sequence, _last_seq(h), first_offset,
                                       first_offset + h.last_offset_delta, h.max_timestamp))

    def __len__(self) -> int:
        return len(self._producers)
