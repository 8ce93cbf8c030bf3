"""One partition as its leader sees it (Kafka's ``Partition``): log, producer state, watermarks, waiters.

Everything that touches a partition goes through this object, so the facts replication and
transactions hang off have one owner:
- the high watermark (here the log end offset: every replica is this node) and the last stable
  offset (the first offset of the oldest open transaction, or the high watermark);
- transaction markers (COMMIT/ABORT control batches the transaction coordinator writes) and the
  aborted-transaction index that read_committed fetches report;
- leader id, leader epoch, replicas and ISR (single node: this node, epoch 0); in cluster mode
  ``replication`` (cluster/replication.py) adds the role, the followers' progress and a high
  watermark of its own, and ``epochs`` the leader-epoch checkpoint (cluster/epoch_cache.py);
- producer state: the idempotence check happens here, atomically with the append;
- waiters (cluster/waiters.py): followers' fetches woken by appends, consumers' fetches and acks=all
  produces when what they wait for moves (the high watermark, the last stable offset).

Disk work that may block stays off the event loop: an append is one ``pwrite`` into the page cache
on the trio thread (atomic with its producer check: no await in between), while fsync
(``flush.messages``/``flush.ms``, rolled segments) and segment deletion run in worker threads
under the partition's I/O lock, so a slow disk delays only the produces that asked for a flush.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Iterable, NamedTuple

import trio

from ..log.errors import KafkaStorageError, NotLeaderError
from ..log.partition_log import AppendInfo, PartitionLog, PreparedAppend, ReadResult
from ..log.producer_state import (
    ActiveProducer, BatchMeta, ProducerStateManager, delete_snapshots_before, write_snapshot_file,
)
from ..log.segment import LogSegment
from ..log.txn_index import AbortedTxn
from ..log.writeback import WRITEBACK_BYTES
from ..protocol.errors import ErrorCode
from ..protocol.records import BatchHeader, build_end_txn_marker, iter_batches
from .epoch_cache import LeaderEpochCache
from .hw_checkpoint import initial_high_watermark
from .replication import Replication
from .waiters import Waiters

log = logging.getLogger("pykbroker.partition")

#: Client appends of at least this many bytes are written in a worker thread (_check_and_append_in_thread).
#: The hand-off costs ~0.15-0.2 ms of CPU per append on this project's VM (measured: +0.26 ms/MiB at
#: 585 KiB, +0.65-1.0 ms/MiB at 292 KiB), so smaller appends, whose pwrite blocks the loop for
#: less than ~1-2 ms, stay on it.
OFFLOAD_BYTES = 512 << 10
#: The broker's own topics (coordinators append to them synchronously, so no write may be in flight).
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


class _PendingWrite:
    """A large append's bytes on their way into the segment file. Written once, by whoever comes
    first: the worker thread, or the event loop when a broker write (a transaction marker) must
    follow it at once; the other then finds it done (or waits the few ms for the thread to finish)."""

    def __init__(self, prepared: PreparedAppend, headers: list[BatchHeader]) -> None:
        self.prepared, self.headers = prepared, headers
        self._lock = threading.Lock()
        self._written = False
        self.error: BaseException | None = None
        #: Set once the append is part of the log (by the produce, or by a marker that came first).
        self.info: AppendInfo | None = None

    def write(self) -> None:
        with self._lock:
            if not self._written:
                self._written = True
                try:
                    self.prepared.segment.write_at_end(self.prepared.data)
                except BaseException as e:  # noqa: BLE001 - handed to whoever completes the append
                    self.error = e
        if self.error is not None:
            raise self.error

READ_UNCOMMITTED, READ_COMMITTED = 0, 1
LATEST_TIMESTAMP, NO_TIMESTAMP = -1, -1
#: Producer-state rebuild reads the headers of this many trailing segments.
PRODUCER_STATE_SEGMENTS = 2

#: Runs an async function in the background (the partition manager's nursery).
Spawn = Callable[[Callable[[], Any]], None]


class ProduceResult(NamedTuple):
    """What a Produce partition entry reports; ``duplicate`` when the batch was already appended."""

    base_offset: int
    log_append_time_ms: int
    log_start_offset: int
    duplicate: bool = False


class Partition:
    def __init__(self, topic: str, index: int, plog: PartitionLog, node_id: int, spawn: Spawn | None = None) -> None:
        self.topic = topic
        self.index = index
        self.log = plog
        plog.deferred_io = True
        self.node_id = node_id
        self.leader_id = node_id
        self.leader_epoch = 0
        self.replicas: list[int] = [node_id]
        self.isr: list[int] = [node_id]
        self.producers = ProducerStateManager()
        self._load_producer_state()
        self._spawn = spawn
        self.waiters = Waiters()
        self._io_lock = trio.Lock()
        self._advising = False  # one writeback/preallocation call at a time (_maybe_advise_kernel)
        self._write_lock = trio.Lock()
        self._pending: _PendingWrite | None = None  # a large append being written in a worker thread
        self._flushed_offset = plog.recovery_point
        self._closed = False
        #: Cluster mode only (``join_cluster``); None keeps the single-node behaviour.
        self.replication: Replication | None = None
        self.epochs: LeaderEpochCache | None = None
        #: (high watermark, last stable offset) consumers' fetches were last woken for.
        self._readable = self._readable_now()

    def _load_producer_state(self) -> None:
        """Kafka's way: the newest snapshot at or below the log end, then the batches after it;
        without one, the trailing segments (every producer still likely to retry is there)."""
        plog = self.log
        covered = self.producers.load_snapshot(plog.directory, plog.log_end_offset)
        if covered is None:
            self.producers.rebuild(_trailing_headers(plog))
        else:
            self.producers.rebuild(h for h, _ in plog.iter_batches(max(covered, plog.log_start_offset)))

    def snapshot_producers(self) -> tuple[int, bytes]:
        """(offset covered, snapshot bytes) of the producer state now, for a write off the loop."""
        return self.log.log_end_offset, self.producers.snapshot_bytes()

    def write_producer_snapshot(self, offset: int, data: bytes) -> None:
        """Worker thread: the snapshot file, and the removal of those below the log start."""
        write_snapshot_file(self.log.directory, offset, data, fsync=self.log.fsync)
        delete_snapshots_before(self.log.directory, min(offset, self.log.log_start_offset))

    def __repr__(self) -> str:
        return f"Partition({self.topic}-{self.index}, hw={self.high_watermark})"

    @property
    def closed(self) -> bool:
        """The partition was dropped (topic deleted): background work leaves it alone."""
        return self._closed

    @property
    def io_lock(self) -> trio.Lock:
        """Held while a worker thread works on this partition's files (fsync, deletion, swaps)."""
        return self._io_lock

    # ------------------------------------------------------------------ offsets

    @property
    def high_watermark(self) -> int:
        r = self.replication
        return self.log.log_end_offset if r is None else r.high_watermark

    @property
    def is_leader(self) -> bool:
        r = self.replication
        return r is None or r.is_leader

    @property
    def min_insync_replicas(self) -> int:
        return int(self.log.config.other.get("min.insync.replicas") or 1)

    def join_cluster(self, checkpointed_hw: int | None = None) -> None:
        """Cluster mode: no role until ZooKeeper gives one (requests get NOT_LEADER_OR_FOLLOWER);
        the high watermark starts at the checkpointed one (cluster/hw_checkpoint.py, clamped to the
        log) and follows the leader's (cluster/replication.py)."""
        hw = initial_high_watermark(checkpointed_hw, self.log.log_start_offset, self.log.log_end_offset)
        self.replication = Replication(self.node_id, high_watermark=hw)
        self.epochs = LeaderEpochCache(self.log.directory, fsync=self.log.fsync)
        self.leader_id = -1
        self._readable = self._readable_now()

    @property
    def last_stable_offset(self) -> int:
        """Kafka: min(first unstable offset, high watermark); read_committed reads stop here."""
        unstable = self.producers.first_unstable_offset()
        hw = self.high_watermark
        return hw if unstable is None else min(unstable, hw)

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    # ------------------------------------------------------------------ appends

    async def append_records(self, records: Any) -> ProduceResult:
        """A client's produce: producer checks, append, then the flush policy's fsync (in a thread).

        Raises the log's and producer state's errors (mapped to Kafka codes by the handler);
        an OSError from the disk becomes KafkaStorageError and changes nothing.
        """
        headers = [h for _, h in iter_batches(records)]
        offload = len(records) >= OFFLOAD_BYTES and self._spawn is not None and self.topic not in INTERNAL_TOPICS
        if offload or self._write_lock.locked() or self._next_segment_base(len(records), headers) is not None:
            async with self._write_lock:  # the roll below yields: check and append stay one step
                await self._roll_ahead(len(records), headers)
                if offload:
                    result = await self._check_and_append_in_thread(records, headers)
                else:
                    result = self._check_and_append(records, headers)
        else:  # no await between the check and the append: atomic as it is (and no scheduler round trip)
            result = self._check_and_append(records, headers)
        if isinstance(result, ProduceResult):
            return result
        await self._after_append(result)
        return ProduceResult(result.first_offset, result.log_append_time, result.log_start_offset)

    def _check_and_append(self, records: Any, headers: list[BatchHeader]) -> "ProduceResult | AppendInfo":
        """The producer checks, then the append: a duplicate's original offsets, or the append's info."""
        self._check_leader()  # again here: leadership may have moved while a roll was prepared
        original = self._check_producers(headers)
        if original is not None:
            return ProduceResult(original.first_offset, -1, self.log_start_offset, duplicate=True)
        return self._append(records, headers, strict=True)

    async def _check_and_append_in_thread(self, records: Any, headers: list[BatchHeader]) -> "ProduceResult | AppendInfo":
        """A large append: checks and preparation on the loop, the write in a worker thread (a 1 MiB
        pwrite into new page-cache pages took 2-4 ms of CPU on the loop, in front of every other
        connection), the rest on the loop again. Under the write lock, so no other client or
        follower append comes between; a marker meanwhile goes after it (``_settle_pending``
        completes it first); internal topics (coordinator writes) never come here."""
        self._check_leader()
        original = self._check_producers(headers)
        if original is not None:
            return ProduceResult(original.first_offset, -1, self.log_start_offset, duplicate=True)
        try:
            prepared = self.log.prepare_append(records, strict=True, leader_epoch=self.leader_epoch)
        except OSError as e:  # e.g. creating the next segment's files on a full disk
            raise KafkaStorageError(f"append to {self.log.directory} failed: {e}") from e
        if isinstance(prepared, AppendInfo):
            return prepared
        pending = self._pending = _PendingWrite(prepared, headers)
        try:
            await trio.to_thread.run_sync(pending.write)
        except KafkaStorageError:
            raise
        except OSError as e:
            raise KafkaStorageError(f"append to {self.log.directory} failed: {e}") from e
        finally:
            if self._pending is pending:
                self._pending = None
        return pending.info if pending.info is not None else self._complete(pending)

    def _complete(self, pending: _PendingWrite) -> AppendInfo:
        """A written large append becomes part of the log (on the event loop)."""
        prepared = pending.prepared
        if self._closed or prepared.segment is not self.log.active_segment:
            # dropped (topic deleted) or shut down while the bytes were written: they stay past the end
            raise KafkaStorageError(f"append to {self.log.directory} failed: the partition was closed")
        try:
            prepared.segment.add_written(len(prepared.data), prepared.entries)
        except OSError as e:
            raise KafkaStorageError(f"append to {self.log.directory} failed: {e}") from e
        pending.info = self._appended(self.log.complete_append(prepared), pending.headers)
        return pending.info

    def _settle_pending(self) -> None:
        """Before a synchronous append (a marker): the large append being written goes first, as
        it would have on the loop (it blocks the loop only while the thread finishes its pwrite)."""
        pending, self._pending = self._pending, None
        if pending is None or pending.info is not None:
            return
        try:
            pending.write()
        except BaseException:  # noqa: BLE001 - the produce that owns it reports it; the log is unchanged
            return
        self._complete(pending)

    def _next_segment_base(self, size: int, headers: list[BatchHeader]) -> int | None:
        try:
            return self.log.roll_ahead(size, headers)
        except ValueError:  # closed, or batches the append will reject with its own error
            return None

    async def _roll_ahead(self, size: int, headers: list[BatchHeader]) -> None:
        """Create the segment this append rolls to in a worker thread, so that the roll itself
        (on the event loop) opens no file: file creation can wait behind another partition's fsync."""
        base = self._next_segment_base(size, headers)
        if base is None:
            return
        try:
            segment = await trio.to_thread.run_sync(self._new_segment, base)
        except OSError as e:
            raise KafkaStorageError(f"creating the next segment of {self.log.directory} failed: {e}") from e
        self.log.offer_prepared(segment)

    def _new_segment(self, base: int) -> LogSegment:
        """Worker thread: the next segment's files, with its first blocks allocated ahead."""
        segment = self.log.new_segment(base)
        segment.preallocate()
        return segment

    def append_internal(self, records: bytes) -> AppendInfo:
        """The broker's own records (coordinators): no client checks, no wait for a flush."""
        info = self._append(records, [h for _, h in iter_batches(records)], strict=False)
        if self.log.has_rolled_segments or self.log.flush_requested:
            self._background(self._flush_pending)
        return info

    def append_marker(self, producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int) -> int:
        """The transaction coordinator ends a producer's transaction here (WriteTxnMarkers): a
        COMMIT or ABORT control batch; an abort is indexed so read_committed readers skip its
        records. Returns the marker's offset. InvalidProducerEpochError if the epoch is stale."""
        self._check_leader()
        self._settle_pending()
        self.producers.check_marker(producer_id, producer_epoch, coordinator_epoch)
        marker = build_end_txn_marker(commit=commit, producer_id=producer_id, producer_epoch=producer_epoch,
                                      coordinator_epoch=coordinator_epoch)
        offset = self.log.log_end_offset
        try:
            self.log.append(marker, strict=False, leader_epoch=self.leader_epoch)
        except OSError as e:
            raise KafkaStorageError(f"append to {self.log.directory} failed: {e}") from e
        first = self.producers.complete_txn(producer_id, producer_epoch, coordinator_epoch=coordinator_epoch)
        if first is not None and not commit:
            self.log.index_aborted(AbortedTxn(producer_id, first, offset, self.last_stable_offset))
        if self.log.has_rolled_segments or self.log.flush_requested:
            self._background(self._flush_pending)
        self._advance_high_watermark()
        self.waiters.appended()
        self.readable_changed()  # the last stable offset (and the high watermark) may have moved
        return offset

    def _check_leader(self) -> None:
        if self.replication is not None and not self.replication.is_leader:
            raise NotLeaderError(f"{self.topic}-{self.index} is not led by this broker (leader: {self.leader_id})")

    def check_leader_epoch(self, current: int, require_leader: bool = True) -> ErrorCode:
        """A request's current_leader_epoch against ours (KIP-320): the client knows a newer leader
        (UNKNOWN_LEADER_EPOCH) or an older one (FENCED_LEADER_EPOCH); -1 skips the check. In a
        cluster, a replica that does not lead answers NOT_LEADER_OR_FOLLOWER, unless
        ``require_leader`` is False (KIP-392 consumer fetches) and it follows a known leader."""
        if not self.is_leader and (require_leader or self.leader_id < 0):
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if current > self.leader_epoch:
            return ErrorCode.UNKNOWN_LEADER_EPOCH
        if 0 <= current < self.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        return ErrorCode.NONE

    def epoch_end_offset(self, epoch: int) -> tuple[int, int]:
        """Kafka's LeaderEpochFileCache.endOffsetFor: (largest epoch <= ``epoch``, where it ends), or
        (-1, -1) if unknown. Single node: one epoch, led by this node since its log start."""
        if self.epochs is not None:
            return self.epochs.end_offset_for(epoch, self.log_end_offset)
        if epoch == self.leader_epoch:
            return epoch, self.log_end_offset
        if epoch < 0 or epoch > self.leader_epoch:
            return -1, -1
        return epoch, self.log_start_offset

    def active_producers(self) -> list[ActiveProducer]:
        return self.producers.active()

    def aborted_transactions(self, fetch_offset: int, upper_bound: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions overlapping a fetched range."""
        return [(t.producer_id, t.first_offset) for t in self.log.collect_aborted(fetch_offset, upper_bound)]

    def _check_producers(self, headers: list[BatchHeader]) -> BatchMeta | None:
        """Kafka's producer checks for one request's batches, in order; a duplicate returns the original."""
        return self.producers.check_batches(headers)

    def _append(self, records: Any, headers: list[BatchHeader], *, strict: bool) -> AppendInfo:
        self._settle_pending()
        try:
            info = self.log.append(records, strict=strict, leader_epoch=self.leader_epoch)
        except OSError as e:  # e.g. creating the next segment's files on a full disk
            raise KafkaStorageError(f"append to {self.log.directory} failed: {e}") from e
        return self._appended(info, headers)

    def _appended(self, info: AppendInfo, headers: list[BatchHeader]) -> AppendInfo:
        """An append is in the log: its producers' state, the high watermark, the waiters."""
        offset = info.first_offset
        for h in headers:
            self.producers.record(h, offset)
            offset += h.last_offset_delta + 1
        self._advance_high_watermark()
        self.waiters.appended()  # cluster: followers may fetch it
        self.readable_changed()  # single node: the high watermark moved with the append
        return info

    def _advance_high_watermark(self) -> None:
        r = self.replication
        if r is not None:
            r.advance(tuple(self.isr), self.log.log_end_offset)

    async def _after_append(self, info: AppendInfo) -> None:
        if self.log.has_rolled_segments:
            self._background(self._flush_rolled)
        self._maybe_advise_kernel()
        if self.log.flush_requested:
            await self.flush(upto=info.last_offset + 1)

    async def flush(self, upto: int | None = None) -> None:
        """fsync the log in a worker thread; one fsync serves every append waiting behind it."""
        target = self.log.log_end_offset if upto is None else upto
        async with self._io_lock:
            if self._closed or self._flushed_offset >= target:
                return
            end = self.log.log_end_offset
            try:
                await trio.to_thread.run_sync(self.log.flush)
            except OSError as e:
                raise KafkaStorageError(f"flush of {self.log.directory} failed: {e}") from e
            self._flushed_offset = end

    async def _flush_rolled(self) -> None:
        """A roll: fsync the old segment and snapshot the producer state (as Kafka does on roll)."""
        offset, data = self.snapshot_producers()
        async with self._io_lock:
            if not self._closed:
                await trio.to_thread.run_sync(self.log.flush_rolled)
                await trio.to_thread.run_sync(self.write_producer_snapshot, offset, data)

    async def _flush_pending(self) -> None:
        await self._flush_rolled()
        if self.log.flush_requested:
            await self.flush()

    async def flush_if_due(self) -> None:
        """flush.ms: called periodically by the partition manager."""
        if self.log.flush_due():
            await self.flush()

    def _maybe_advise_kernel(self) -> None:
        """Keep the kernel ahead of the active segment (log/writeback.py): every WRITEBACK_BYTES
        appended, start writing them out, so that a roll's fsync is not one burst of a whole segment
        (only where the log fsyncs at all); and keep blocks allocated past its end, so that an append
        on the event loop writes into them instead of reserving blocks itself. One call at a time,
        in a worker thread."""
        seg = self.log.active_segment
        if self._advising or self._spawn is None:
            return
        writeback = self.log.fsync and seg.writeback_pending() >= WRITEBACK_BYTES
        allocate = seg.preallocation_due()
        if not (writeback or allocate):
            return
        self._advising = True

        def advise() -> None:
            if writeback:
                seg.start_writeback()
            if allocate:
                seg.preallocate()

        async def run() -> None:
            try:
                await trio.to_thread.run_sync(advise)
            finally:
                self._advising = False

        self._spawn(run)

    def _background(self, fn: Callable[[], Any]) -> None:
        if self._spawn is not None:
            self._spawn(lambda: _logged(fn, self))
        else:  # no broker nursery (a Broker used without run(), e.g. tools and unit tests): do it now
            self.log.flush_rolled()
            if self.log.flush_requested:
                self.log.flush()

    # ------------------------------------------------------------------ retention

    async def delete_old_segments(self, now_ms: int | None = None) -> int:
        """retention.ms / retention.bytes: segments leave the log at once, their files in a thread."""
        n = self.log.delete_old_segments(now_ms)
        await self._remove_deleted()
        return n

    async def delete_records(self, before_offset: int) -> int:
        self._check_leader()
        low = self.log.delete_records(before_offset)
        await self._remove_deleted()
        return low

    async def _remove_deleted(self) -> None:
        doomed = self.log.take_deleted_segments()
        if doomed:
            async with self._io_lock:
                await trio.to_thread.run_sync(lambda: [seg.delete() for seg in doomed])

    async def close(self) -> None:
        """Stop background work on this partition (topic deletion); the log is closed by its owner."""
        async with self._io_lock:
            self._closed = True

    # ------------------------------------------------------------------ reads

    def read(self, fetch_offset: int, max_bytes: int, *, min_one_batch: bool, isolation_level: int = READ_UNCOMMITTED,
             as_file_records: bool = True, replica: bool = False) -> ReadResult:
        """Whole batches below the high watermark (read_committed: below the last stable offset);
        a follower's replica fetch reads up to the log end."""
        if replica:
            upper = self.log_end_offset
        else:
            upper = self.last_stable_offset if isolation_level == READ_COMMITTED else self.high_watermark
        return self.log.read(fetch_offset, max_bytes, min_one_batch=min_one_batch, max_offset=upper,
                             as_file_records=as_file_records)

    def fetch_offset_by_timestamp(self, timestamp: int, isolation_level: int = READ_UNCOMMITTED) -> tuple[int, int] | None:
        """ListOffsets: as Kafka, "latest" is the last fetchable offset (read_committed: the LSO),
        and a timestamp lookup finds only offsets below it."""
        fetchable = self.last_stable_offset if isolation_level == READ_COMMITTED else self.high_watermark
        if timestamp == LATEST_TIMESTAMP:
            return fetchable, NO_TIMESTAMP
        found = self.log.fetch_offset_by_timestamp(timestamp)
        if found is not None and timestamp >= 0 and found[0] >= fetchable:
            return None
        return found

    # ------------------------------------------------------------------ waiters

    def readable_changed(self) -> None:
        """Wake consumers' fetches and the acks=all produces now covered, if the high watermark
        or the last stable offset moved since they were last woken (a no-op otherwise)."""
        readable = self._readable_now()
        if readable != self._readable:
            self._readable = readable
            self.waiters.readable_moved(readable[0])

    def wake_all(self) -> None:
        """Role, epoch or ISR changed: every waiter checks its outcome again."""
        self._readable = self._readable_now()
        self.waiters.wake_all()

    def _readable_now(self) -> tuple[int, int]:
        return self.high_watermark, self.last_stable_offset


async def _logged(fn: Callable[[], Any], partition: Partition) -> None:
    try:
        await fn()
    except (OSError, KafkaStorageError) as e:
        log.error("%s-%d: background flush failed (retried on the next roll or flush): %s",
                  partition.topic, partition.index, e)


def _trailing_headers(plog: PartitionLog) -> Iterable[BatchHeader]:
    for seg in plog.segments[-PRODUCER_STATE_SEGMENTS:]:
        for _, h in seg.iter_headers(0):
            yield h

