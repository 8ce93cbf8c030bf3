"""The broker's log cleaner (Kafka's ``LogCleaner`` + ``LogCleanerManager``): compacts
``cleanup.policy=compact`` partitions in the background.

``log.cleaner.threads`` tasks each take the filthiest compacted partition nobody is cleaning (by
dirty ratio, among those above ``min.cleanable.dirty.ratio`` or past ``max.compaction.lag.ms``),
clean it in worker threads (``log/cleaner.py``) and sleep ``log.cleaner.backoff.ms`` when there is
nothing to do. The heavy work never runs on the event loop; the segment list is switched there,
in one synchronous step, so produces and fetches see the old segments or the new ones. Fetches
already sending an old segment hold their own descriptors; the replaced segments' files are
renamed ``.deleted`` at once and removed ``file.delete.delay.ms`` later, as Kafka does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import outcome
import trio

from ..log.cleaner_filter import TxnTracker
from ..log.cleaner import CleaningAborted, CleaningJob, CleanPlan, Throttler, plan
from ..log.errors import KafkaStorageError
from ..log.offset_map import slots_for
from ..log.segment import LogSegment, now_ms
from ..log.swap import finish_swap
from .partition import Partition

log = logging.getLogger("pykbroker.cleaner")


@dataclass(frozen=True)
class CleanerConfig:
    """The broker's log.cleaner.* settings, with Kafka's meanings and defaults."""

    enable: bool = True
    threads: int = 1
    backoff_ms: int = 15_000
    dedupe_buffer_size: int = 128 * 1024 * 1024
    io_buffer_size: int = 512 * 1024
    io_max_bytes_per_second: float = float("inf")

    @classmethod
    def from_broker(cls, config: Any) -> CleanerConfig:
        return cls(config.log_cleaner_enable, config.log_cleaner_threads, config.log_cleaner_backoff_ms,
                   config.log_cleaner_dedupe_buffer_size, config.log_cleaner_io_buffer_size,
                   config.log_cleaner_io_max_bytes_per_second)


@dataclass(frozen=True)
class CleanResult:
    partition: str
    first_dirty: int
    end_offset: int
    groups: int
    bytes_before: int
    bytes_after: int


async def _in_thread(job: CleaningJob, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` in a worker thread; cancellation sets the job's stop flag, which the thread checks
    between batches, instead of leaving the thread writing files behind a closing broker."""
    finished = False
    async with trio.open_nursery() as nursery:
        async def stop_on_cancel() -> None:
            try:
                await trio.sleep_forever()
            finally:
                if not finished:
                    job.stop.set()

        nursery.start_soon(stop_on_cancel)
        result = await outcome.acapture(trio.to_thread.run_sync, fn, *args)
        finished = True
        nursery.cancel_scope.cancel()
    return result.unwrap()


class LogCleaner:
    def __init__(self, partitions: Callable[[], Iterable[Partition]], config: CleanerConfig) -> None:
        self._partitions = partitions
        self.config = config
        self.throttler = Throttler(config.io_max_bytes_per_second)
        self._in_progress: set[tuple[str, int]] = set()
        #: Partitions whose cleaning failed unexpectedly (Kafka's uncleanable partitions): left alone.
        self.uncleanable: set[tuple[str, int]] = set()
        self._capacity = slots_for(config.dedupe_buffer_size, max(1, config.threads))
        self._nursery: trio.Nursery | None = None
        #: Set after every finished round (tests and the bench wait on it).
        self.rounds = 0
        self._round_done = trio.Event()

    async def run(self) -> None:
        """The cleaner threads, until cancelled (nothing when log.cleaner.enable=false or 0 threads)."""
        if not self.config.enable or self.config.threads <= 0:
            return
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for _ in range(self.config.threads):
                nursery.start_soon(self._cleaner_thread)

    async def _cleaner_thread(self) -> None:
        while True:
            try:
                cleaned = await self.clean_filthiest()
            except Exception as e:  # the cleaner must never stop the broker
                log.exception("log cleaner round failed: %r", e)
                cleaned = None
            if cleaned is None:
                await trio.sleep(self.config.backoff_ms / 1000)

    async def wait_round(self) -> None:
        """Until the next round finishes."""
        await self._round_done.wait()

    def _plan(self, p: Partition, now: int) -> CleanPlan | None:
        plog = p.log
        key = (p.topic, p.index)
        if not plog.config.compact_enabled or key in self._in_progress or key in self.uncleanable or p.closed:
            return None
        segments = plog.segments
        if len(segments) < 2:
            return None
        return plan(segments, plog.config, log_start_offset=plog.log_start_offset,
                    log_end_offset=plog.log_end_offset, last_stable_offset=p.last_stable_offset,
                    first_unflushed=plog.first_unflushed_offset, checkpoint=plog.cleaner_checkpoint, now_ms=now)

    async def clean_filthiest(self) -> CleanResult | None:
        """Clean the dirtiest cleanable partition, if any (one round); None when none is."""
        now = now_ms()
        best: tuple[float, Partition, CleanPlan] | None = None
        for p in self._partitions():
            try:
                found = self._plan(p, now)
            except (OSError, ValueError) as e:
                log.error("%s-%d: cannot measure how dirty the log is: %s", p.topic, p.index, e)
                continue
            if found is None or not found.should_clean(p.log.config):
                continue
            if best is None or found.dirty_ratio > best[0]:
                best = (found.dirty_ratio, p, found)
        if best is None:
            return None
        _, p, chosen = best
        key = (p.topic, p.index)
        self._in_progress.add(key)
        try:
            result = await self._clean(p, chosen, now)
        except CleaningAborted as e:
            log.info("%s", e)
            return None
        except (OSError, KafkaStorageError) as e:
            log.error("%s-%d: cleaning failed (the log is unchanged where it was not swapped; retried after "
                      "log.cleaner.backoff.ms): %s", p.topic, p.index, e)
            return None
        except Exception as e:  # e.g. a batch on disk that does not parse: never clean it blindly
            log.error("%s-%d in %s: cleaning failed and the partition is marked uncleanable until the broker "
                      "restarts (no data was removed where it was not swapped): %r", p.topic, p.index,
                      p.log.directory, e)
            self.uncleanable.add(key)
            return None
        finally:
            self._in_progress.discard(key)
        self.rounds += 1
        self._round_done.set()
        self._round_done = trio.Event()
        return result

    async def _clean(self, p: Partition, chosen: CleanPlan, now: int) -> CleanResult:
        plog = p.log
        name = f"{p.topic}-{p.index}"
        job = CleaningJob.open(plog.directory, plog.segments, plog.log_end_offset, plog.config, plog.fsync, chosen,
                               plog.collect_aborted(plog.log_start_offset, plog.log_end_offset),
                               p.producers.last_records(), now, self.config.io_buffer_size, self.throttler)
        before = sum(v.size for v in job.views)
        after = 0
        try:
            offsets = await _in_thread(job, job.build_offset_map, self._capacity)
            end = offsets.latest_offset + 1
            groups = job.groups(end)
            batch_filter = job.new_filter(offsets)
            txns = TxnTracker.of(job.aborted)
            for group in groups:
                new = await _in_thread(job, job.clean_group, group, batch_filter, txns)
                old = [v.segment for v in group]
                if p.closed or not plog.replace_segments(old, new):
                    log.info("%s: segments changed while cleaning (retention or deletion); dropping the cleaned "
                             "segment %d", name, new.base_offset)
                    await trio.to_thread.run_sync(new.delete)
                    raise CleaningAborted(f"{name}: cleaning round given up")
                after += new.size
                await self._finish(p, old, new)
            if chosen.checkpoint_reset or end > chosen.first_dirty:
                await trio.to_thread.run_sync(plog.write_cleaner_checkpoint, max(end, chosen.first_dirty))
        finally:
            job.close()
        log.info("%s: cleaned offsets %d..%d in %d group(s): %d -> %d bytes", name, chosen.first_dirty, end - 1,
                 len(groups), before, after)
        return CleanResult(name, chosen.first_dirty, end, len(groups), before, after)

    async def _finish(self, p: Partition, old: list[LogSegment], new: LogSegment) -> None:
        """Rename the swapped-out files .deleted and the new ones to their live names (a worker
        thread, under the partition's I/O lock as its other file work); remove the old ones later."""
        fsync = p.log.fsync
        async with p.io_lock:
            with trio.CancelScope(shield=True):  # a crash here is recovered, but a clean stop need not be
                await trio.to_thread.run_sync(lambda: finish_swap(old, new, fsync=fsync))
        delay = p.log.config.file_delete_delay_ms / 1000
        if self._nursery is not None and delay > 0:
            self._nursery.start_soon(self._delete_later, old, delay)
        else:
            await trio.to_thread.run_sync(lambda: [s.delete() for s in old])

    @staticmethod
    async def _delete_later(old: list[LogSegment], delay: float) -> None:
        try:
            await trio.sleep(delay)
            await trio.to_thread.run_sync(lambda: [s.delete() for s in old])
        finally:
            for s in old:  # stopping: close now; the .deleted files go at the next start
                s.close_handles()
