"""Idempotent-producer state of one partition: the last batches of each producer id.

Kafka's ProducerStateManager in miniature: per producer id the current epoch and the metadata of
its last five batches, so a retried batch is recognised and answered with its original offsets,
and a gap in sequence numbers is refused. The state is kept across restarts by snapshots
(``<20-digit offset>.snapshot``, Kafka's name) plus a replay of the batch headers after the
snapshot's offset; producers idle longer than ``producer.id.expiration.ms`` are forgotten.

Transactions: each producer's ongoing transaction is known by the offset of its first batch;
the smallest of those is the partition's first unstable offset (what bounds the last stable
offset), and a COMMIT/ABORT marker ends it.

Snapshot format (ours, modelled on Kafka's): a 6-byte header ``>hI`` (version, CRC-32C of
everything after it), then ``>i`` producer count and per producer ``>qhqbq`` (id, epoch, last
timestamp, batch count, first offset of the ongoing transaction or -1; version 1 has no
transaction field) followed by that many ``>iiqqq`` batches (first/last sequence, first/last
offset, max timestamp). Unlike Kafka we keep all five batches, so duplicates are still
recognised after a reload.

Not thread-safe: mutate it from one thread; ``snapshot_bytes`` then ``write_snapshot_file`` lets
the blocking write (fsync) run in a worker thread.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Iterable

import crc32c

from ..protocol.records import BatchHeader
from .checkpoint import write_atomic

log = logging.getLogger(__name__)

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1
NUM_BATCHES_TO_RETAIN = 5  # Kafka keeps five: the producer's max.in.flight.requests limit
INT32_MAX = 2**31 - 1

SNAPSHOT_SUFFIX: Final = ".snapshot"
SNAPSHOT_VERSION: Final = 3
_HEADER = struct.Struct(">hI")
_COUNT = struct.Struct(">i")
#: Per producer: id, epoch, last timestamp, batch count; v2 + open transaction's first offset;
#: v3 + coordinator epoch of its last marker.
_PRODUCERS = {1: struct.Struct(">qhqb"), 2: struct.Struct(">qhqbq"), 3: struct.Struct(">qhqbqi")}
_BATCH = struct.Struct(">iiqqq")


@dataclass(frozen=True)
class ActiveProducer:
    """One producer as DescribeProducers reports it."""

    producer_id: int
    epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int
    txn_start_offset: int


class OutOfOrderSequenceError(Exception):
    """OUT_OF_ORDER_SEQUENCE_NUMBER: a batch does not continue its producer's sequence."""


class InvalidProducerEpochError(Exception):
    """INVALID_PRODUCER_EPOCH: a batch from an epoch older than the producer's current one."""


class CoordinatorFencedError(Exception):
    """TRANSACTION_COORDINATOR_FENCED: a marker from a transaction coordinator older (by its leader
    epoch of __transaction_state) than the one that wrote the producer's last marker."""


class CorruptSnapshotError(ValueError):
    """A producer snapshot file that does not parse or whose CRC does not match."""


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
    #: Max timestamp of the producer's last batch: what producer.id.expiration.ms is measured from.
    last_timestamp: int = -1
    #: Offset of the first batch of the producer's ongoing transaction; -1 when none is open.
    txn_first_offset: int = -1
    #: Coordinator epoch of the producer's last transaction marker (-1: none seen).
    coordinator_epoch: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    def find_duplicate(self, h: BatchHeader) -> BatchMeta | None:
        return _find_duplicate(self.batches, h)


def _find_duplicate(batches: Iterable[BatchMeta], h: BatchHeader) -> BatchMeta | None:
    last = _last_seq(h)
    for b in batches:
        if b.first_seq == h.base_sequence and b.last_seq == last:
            return b
    return None


def _last_seq(h: BatchHeader) -> int:
    return (h.base_sequence + h.last_offset_delta) % (INT32_MAX + 1)


def _is_idempotent(h: BatchHeader) -> bool:
    return h.producer_id != NO_PRODUCER_ID and h.base_sequence != NO_SEQUENCE


def snapshot_path(directory: Path, offset: int) -> Path:
    return Path(directory) / f"{offset:020d}{SNAPSHOT_SUFFIX}"


def snapshot_offsets(directory: Path) -> list[int]:
    """Offsets of the snapshot files in ``directory``, ascending (other names are ignored)."""
    offsets = []
    for path in Path(directory).glob("*" + SNAPSHOT_SUFFIX):
        stem = path.name[: -len(SNAPSHOT_SUFFIX)]
        if len(stem) == 20 and stem.isdigit():
            offsets.append(int(stem))
    return sorted(offsets)


def write_snapshot_file(directory: Path, offset: int, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``snapshot_bytes()`` atomically (blocking; fine from a worker thread)."""
    path = snapshot_path(directory, offset)
    write_atomic(path, data, fsync=fsync)
    return path


def delete_snapshots_before(directory: Path, offset: int) -> list[Path]:
    """Remove snapshots below ``offset`` (the log start moved past them); returns the removed."""
    removed = []
    for o in snapshot_offsets(directory):
        if o < offset:
            path = snapshot_path(directory, o)
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class ProducerStateManager:
    def __init__(self) -> None:
        self._producers: dict[int, ProducerEntry] = {}
        #: Producer id -> first offset of its open transaction (what bounds the LSO).
        self._ongoing: dict[int, int] = {}

    # ------------------------------------------------------------------ validation

    def check_batches(self, headers: Iterable[BatchHeader]) -> BatchMeta | None:
        """Before appending one Produce request's batches for this partition: validate them in
        order, each as if the earlier ones had been appended. Returns the recorded batch if one
        duplicates a recent batch of its producer (Kafka answers a retried request with the
        original offsets), else None. Raises OutOfOrderSequenceError / InvalidProducerEpochError
        as Kafka would; changes nothing either way (``record`` after the append does)."""
        # Per producer id touched so far: (epoch, last sequence, recorded batches it may duplicate).
        pending: dict[int, tuple[int, int, Iterable[BatchMeta]]] = {}
        for h in headers:
            if not _is_idempotent(h):
                continue
            if h.producer_id in pending:
                epoch, last_seq, recorded = pending[h.producer_id]
            else:
                entry = self._producers.get(h.producer_id)
                if entry is None:
                    # Unknown producer (new, or its state expired): Kafka accepts the batch and
                    # starts tracking from it (KIP-360), so a producer is not stuck after expiry.
                    pending[h.producer_id] = (h.producer_epoch, _last_seq(h), ())
                    continue
                epoch, last_seq, recorded = entry.epoch, entry.last_seq, entry.batches
            if h.producer_epoch < epoch:
                raise InvalidProducerEpochError(
                    f"producer {h.producer_id} epoch {h.producer_epoch} is older than the current epoch {epoch}")
            if h.producer_epoch > epoch:
                if h.base_sequence != 0:
                    raise OutOfOrderSequenceError(
                        f"producer {h.producer_id} new epoch {h.producer_epoch} must start at sequence 0, "
                        f"got {h.base_sequence}")
            else:
                duplicate = _find_duplicate(recorded, h)
                if duplicate is not None:
                    return duplicate
                expected = (last_seq + 1) % (INT32_MAX + 1)
                if last_seq != NO_SEQUENCE and h.base_sequence != expected:
                    raise OutOfOrderSequenceError(
                        f"producer {h.producer_id} epoch {h.producer_epoch}: sequence {h.base_sequence} "
                        f"does not follow {last_seq} (expected {expected})")
            pending[h.producer_id] = (h.producer_epoch, _last_seq(h), ())
        return None

    def check(self, h: BatchHeader) -> BatchMeta | None:
        """``check_batches`` for a single batch."""
        return self.check_batches([h])

    # ------------------------------------------------------------------ updates

    def record(self, h: BatchHeader, first_offset: int) -> None:
        """After an append: remember the batch (its offsets as assigned by the log)."""
        if not _is_idempotent(h):
            return
        entry = self._producers.get(h.producer_id)
        if entry is None or h.producer_epoch > entry.epoch:
            entry = self._producers[h.producer_id] = ProducerEntry(h.producer_epoch)
        entry.batches.append(BatchMeta(h.base_sequence, _last_seq(h), first_offset,
                                       first_offset + h.last_offset_delta, h.max_timestamp))
        entry.last_timestamp = max(entry.last_timestamp, h.max_timestamp)
        if h.is_transactional and entry.txn_first_offset < 0:
            entry.txn_first_offset = first_offset
            self._ongoing[h.producer_id] = first_offset

    # ------------------------------------------------------------------ transactions

    def check_marker(self, producer_id: int, epoch: int, coordinator_epoch: int = -1) -> None:
        """A COMMIT/ABORT marker from the coordinator: refused if its epoch is older than the
        producer's, or if it comes from an older coordinator than the producer's last marker (a
        coordinator that lost its partition and does not know yet), as Kafka's appendEndTxnMarker."""
        entry = self._producers.get(producer_id)
        if entry is not None and epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"transaction marker of producer {producer_id} has epoch {epoch}, older than {entry.epoch}")
        if entry is not None and coordinator_epoch < entry.coordinator_epoch:
            raise CoordinatorFencedError(
                f"transaction marker of producer {producer_id} comes from coordinator epoch {coordinator_epoch}, "
                f"older than {entry.coordinator_epoch}")

    def complete_txn(self, producer_id: int, epoch: int, last_timestamp: int = -1,
                     coordinator_epoch: int | None = None) -> int | None:
        """A marker was appended: the producer's transaction ends. Returns the offset of its first
        batch (None: it had written nothing here). A marker's newer epoch becomes the producer's,
        and so does its coordinator epoch when known (not from a header-only replay)."""
        entry = self._producers.get(producer_id)
        if entry is None:
            entry = self._producers[producer_id] = ProducerEntry(epoch)
        elif epoch > entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()
        if coordinator_epoch is not None:
            entry.coordinator_epoch = max(entry.coordinator_epoch, coordinator_epoch)
        entry.last_timestamp = max(entry.last_timestamp, last_timestamp)
        first, entry.txn_first_offset = entry.txn_first_offset, -1
        self._ongoing.pop(producer_id, None)
        return first if first >= 0 else None

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction; None when none is open."""
        return min(self._ongoing.values()) if self._ongoing else None

    def active(self) -> list[ActiveProducer]:
        return [ActiveProducer(pid, e.epoch, e.last_seq, e.last_timestamp, -1, e.txn_first_offset)
                for pid, e in sorted(self._producers.items())]

    def last_records(self) -> dict[int, tuple[int | None, int]]:
        """Per producer id: the last offset of its last data batch (None when a marker of a newer
        epoch came after it) and its epoch; the cleaner keeps those batches (Kafka's
        lastRecordsOfActiveProducers), so sequence checks and fencing survive compaction."""
        return {pid: (e.batches[-1].last_offset if e.batches else None, e.epoch)
                for pid, e in self._producers.items()}

    def ongoing_transactions(self) -> dict[int, int]:
        """Producer id -> first offset of its open transaction."""
        return dict(self._ongoing)

    def rebuild(self, headers: Iterable[BatchHeader]) -> None:
        """Replay stored batch headers (offsets already assigned), as on broker start."""
        for h in headers:
            if h.is_control and h.producer_id != NO_PRODUCER_ID:
                self.complete_txn(h.producer_id, h.producer_epoch, h.max_timestamp)
            elif _is_idempotent(h):
                self.record(h, h.base_offset)

    def expire(self, now_ms: int, expiration_ms: int) -> list[int]:
        """Forget producers idle for ``producer.id.expiration.ms`` (measured, as in Kafka, from
        their last batch's max timestamp); returns their ids."""
        expired = [pid for pid, e in self._producers.items()
                   if e.txn_first_offset < 0 and now_ms - e.last_timestamp >= expiration_ms]
        for pid in expired:
            del self._producers[pid]
        return expired

    # ------------------------------------------------------------------ snapshots

    def snapshot_bytes(self) -> bytes:
        body = [_COUNT.pack(len(self._producers))]
        for pid, e in sorted(self._producers.items()):
            body.append(_PRODUCERS[SNAPSHOT_VERSION].pack(pid, e.epoch, e.last_timestamp, len(e.batches),
                                                          e.txn_first_offset, e.coordinator_epoch))
            body.extend(_BATCH.pack(b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.timestamp)
                        for b in e.batches)
        data = b"".join(body)
        return _HEADER.pack(SNAPSHOT_VERSION, crc32c.crc32c(data)) + data

    def write_snapshot(self, directory: Path, offset: int, *, fsync: bool = True) -> Path:
        """Snapshot the state as of ``offset`` (the log end offset it covers)."""
        return write_snapshot_file(directory, offset, self.snapshot_bytes(), fsync=fsync)

    def load_snapshot(self, directory: Path, max_offset: int) -> int | None:
        """Replace the state with the newest readable snapshot at or below ``max_offset`` and
        return its offset (replay the headers from there); None: no usable snapshot, state
        empty (replay everything). A damaged snapshot is logged and skipped, never removed."""
        for offset in reversed(snapshot_offsets(directory)):
            if offset > max_offset:
                continue
            path = snapshot_path(directory, offset)
            try:
                producers = _parse_snapshot(path.read_bytes())
            except (OSError, CorruptSnapshotError) as exc:
                log.warning("ignoring producer snapshot %s: %s; falling back to an older one", path, exc)
                continue
            self._producers = producers
            self._ongoing = {pid: e.txn_first_offset for pid, e in producers.items() if e.txn_first_offset >= 0}
            return offset
        self._producers = {}
        self._ongoing = {}
        return None

    def delete_snapshots_before(self, directory: Path, offset: int) -> list[Path]:
        return delete_snapshots_before(directory, offset)

    def entry(self, producer_id: int) -> ProducerEntry | None:
        return self._producers.get(producer_id)

    def __len__(self) -> int:
        return len(self._producers)


def _parse_snapshot(data: bytes) -> dict[int, ProducerEntry]:
    if len(data) < _HEADER.size + _COUNT.size:
        raise CorruptSnapshotError(f"too short ({len(data)} bytes)")
    version, crc = _HEADER.unpack_from(data)
    layout = _PRODUCERS.get(version)
    if layout is None:
        raise CorruptSnapshotError(f"unknown version {version}")
    body = memoryview(data)[_HEADER.size:]
    if crc32c.crc32c(body) != crc:
        raise CorruptSnapshotError("CRC mismatch")
    try:
        (count,), pos = _COUNT.unpack_from(body), _COUNT.size
        producers: dict[int, ProducerEntry] = {}
        for _ in range(count):
            pid, epoch, last_ts, n, *txn = layout.unpack_from(body, pos)
            pos += layout.size
            if not 0 <= n <= NUM_BATCHES_TO_RETAIN:
                raise CorruptSnapshotError(f"producer {pid} has {n} batches")
            entry = ProducerEntry(epoch, last_timestamp=last_ts, txn_first_offset=txn[0] if txn else -1,
                                  coordinator_epoch=txn[1] if len(txn) > 1 else -1)
            for _ in range(n):
                entry.batches.append(BatchMeta(*_BATCH.unpack_from(body, pos)))
                pos += _BATCH.size
            producers[pid] = entry
    except struct.error as exc:
        raise CorruptSnapshotError(f"truncated: {exc}") from None
    if pos != len(body):
        raise CorruptSnapshotError(f"{len(body) - pos} trailing bytes")
    return producers
