"""A cluster-mode partition's replication steps: becoming leader or follower, copying the leader's
batches, truncating a diverged tail, counting followers' fetches, waiting for acks=all.

Functions over ``Partition`` (which keeps the single-node hot path free of all this). Each keeps
the partition's invariants: the high watermark never exceeds the log end offset nor moves back on a
leader; consumers never read above it; every epoch change is in the leader-epoch checkpoint before
data of that epoch is served.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from ..log.producer_state import SNAPSHOT_SUFFIX, ProducerStateManager
from ..log.segment import now_ms
from ..protocol.errors import ErrorCode
from ..protocol.records import iter_batches
from .model import PartitionState
from .partition import Partition, _trailing_headers
from .replicated_txns import apply_replicated

log = logging.getLogger("pykbroker.replication")


def _replication(p: Partition):  # type: ignore[no-untyped-def]
    assert p.replication is not None and p.epochs is not None, f"{p} is not a cluster partition"
    return p.replication, p.epochs


async def become_leader(p: Partition, state: PartitionState, replicas: tuple[int, ...]) -> None:
    """Lead at ``state.leader_epoch``: the epoch starts at our log end (checkpointed off the loop)."""
    r, epochs = _replication(p)
    async with p._write_lock:  # no follower append or truncation is half done when we take over
        if epochs.assign(state.leader_epoch, p.log_end_offset):
            await trio.to_thread.run_sync(epochs.persist)
        p.leader_id, p.leader_epoch = state.leader, state.leader_epoch
        p.replicas, p.isr = list(replicas), list(state.isr)
        r.zk_version = state.zk_version
        r.lead(replicas, state.isr, p.log_end_offset, now_ms())
    r.advance(state.isr, p.log_end_offset)
    log.info("%s-%d: leader at epoch %d, ISR %s", p.topic, p.index, state.leader_epoch, list(state.isr))
    p.wake_all()


def become_follower(p: Partition, state: PartitionState, replicas: tuple[int, ...]) -> None:
    r, _ = _replication(p)
    was_leader = r.is_leader
    p.leader_id, p.leader_epoch = state.leader, state.leader_epoch
    p.replicas, p.isr = list(replicas), list(state.isr)
    r.zk_version = state.zk_version
    r.follow()
    if was_leader:
        log.info("%s-%d: follower of %d at epoch %d", p.topic, p.index, state.leader, state.leader_epoch)
    p.wake_all()  # acks=all waiters answer NOT_LEADER_OR_FOLLOWER


def update_isr(p: Partition, state: PartitionState) -> None:
    """A new ISR for the same leader and epoch (our own write, or the controller's)."""
    r, _ = _replication(p)
    p.isr = list(state.isr)
    r.zk_version = state.zk_version
    r.advance(state.isr, p.log_end_offset)
    p.wake_all()  # also acks=all waiters, which check min.insync.replicas again


def follower_fetched(p: Partition, replica_id: int, fetch_offset: int) -> bool:
    """The leader saw a replica fetch at ``fetch_offset`` (the follower's log end); True when the
    follower should be taken back into the ISR."""
    r, _ = _replication(p)
    r.record_fetch(replica_id, fetch_offset, p.log_end_offset, now_ms())
    if r.advance(tuple(p.isr), p.log_end_offset):
        p.readable_changed()
    return r.isr_candidate(replica_id, tuple(p.isr))


async def wait_for_replication(p: Partition, required_offset: int, epoch: int, deadline: float) -> ErrorCode:
    """acks=all: wait (without blocking the loop) until the high watermark reaches ``required_offset``.
    Kafka's DelayedProduce outcomes: NONE, NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below
    min.insync.replicas meanwhile, NOT_LEADER_OR_FOLLOWER when leadership moved, REQUEST_TIMED_OUT."""
    r = p.replication
    if r is None:
        return ErrorCode.NONE
    while True:
        if not r.is_leader or p.leader_epoch != epoch:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if r.high_watermark >= required_offset:
            return ErrorCode.NONE if len(p.isr) >= p.min_insync_replicas \
                else ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        if trio.current_time() >= deadline:
            return ErrorCode.REQUEST_TIMED_OUT
        event = trio.Event()
        p.waiters.add_produce(required_offset, event)
        try:
            with trio.move_on_at(deadline):
                await event.wait()
        finally:
            p.waiters.remove_produce(event)


async def append_replicated(p: Partition, records: bytes, leader_high_watermark: int) -> int:
    """A follower copies the leader's batches as they are (offsets and epochs kept) and records
    their producers and epochs; returns the bytes appended."""
    r, epochs = _replication(p)
    view = memoryview(records)
    headers = [h for _, h in iter_batches(view)]
    end = sum(h.batch_length + 12 for h in headers)
    if headers:
        async with p._write_lock:
            if r.is_leader:
                return 0  # became leader meanwhile: what the old leader sent is not ours to append
            await p._roll_ahead(end, headers)
            info = p.log.append(view[:end], assign_offsets=False, strict=False)
        apply_replicated(p, view[:end])  # producer state and aborted transactions, as the leader's
        if any([epochs.assign(h.partition_leader_epoch, h.base_offset) for h in headers]):
            await trio.to_thread.run_sync(epochs.persist)
        await p._after_append(info)
    hw = min(leader_high_watermark, p.log_end_offset)
    if hw > r.high_watermark:
        r.high_watermark = hw
    p.readable_changed()  # consumers reading from this follower (KIP-392)
    return end


async def truncate_to(p: Partition, offset: int) -> None:
    """Remove a diverged tail (KIP-101): the log, the epochs of the removed range, producer
    snapshots above the cut; producer state is rebuilt from what remains."""
    r, epochs = _replication(p)
    if offset >= p.log_end_offset:
        return
    log.warning("%s-%d: truncating from %d to %d (diverged from the leader)", p.topic, p.index,
                p.log_end_offset, offset)
    async with p._write_lock:
        if r.is_leader:
            return  # a leader's log is the truth: never cut it
        async with p._io_lock:
            producers = await trio.to_thread.run_sync(_truncate, p, offset)
    p.producers = producers
    r.high_watermark = min(r.high_watermark, p.log_end_offset)


def _truncate(p: Partition, offset: int) -> ProducerStateManager:
    """Worker thread (holds the partition's locks; the follower serves no writes)."""
    _, epochs = _replication(p)
    p.log.truncate_to(offset)
    if epochs.truncate_from_end(p.log_end_offset):
        epochs.persist()
    for path in Path(p.log.directory).glob("*" + SNAPSHOT_SUFFIX):
        stem = path.name[:-len(SNAPSHOT_SUFFIX)]
        if stem.isdigit() and int(stem) > p.log_end_offset:
            path.unlink(missing_ok=True)
    producers = ProducerStateManager()
    covered = producers.load_snapshot(p.log.directory, p.log_end_offset)
    if covered is None:
        producers.rebuild(_trailing_headers(p.log))
    else:
        producers.rebuild(h for h, _ in p.log.iter_batches(max(covered, p.log_start_offset)))
    return producers
