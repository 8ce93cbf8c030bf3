"""Who is waiting on a partition, and which event wakes whom (Kafka's purgatories, per partition).

Kafka completes a delayed request only when what it waits for may have happened:
- a follower's fetch (DelayedFetch of a replica) when the leader *appends*: it reads up to the
  log end, and learns the high watermark in its next response;
- a consumer's fetch (DelayedFetch) when what it may read moves: the high watermark, or the last
  stable offset for read_committed (a transaction marker);
- an acks=all produce (DelayedProduce) when the high watermark reaches its batch's end.
A role, epoch or ISR change wakes everyone: each waiter checks its own outcome again.

Waking everyone on every append made each event cost O(waiters): at 1000 single-record acks=all
produces/s, the appends, the followers' fetches and the consumer's fetch each woke every pending
produce and fetch, whose re-checks then slowed the replication round trip they were waiting for.
"""

from __future__ import annotations

import heapq
import itertools

import trio


class Waiters:
    """The events parked on one partition, by what completes them."""

    def __init__(self) -> None:
        self._replicas: set[trio.Event] = set()
        self._readers: set[trio.Event] = set()
        #: acks=all produces: (required offset, tie-break, event); removed ones stay until popped.
        self._produces: list[tuple[int, int, trio.Event]] = []
        self._pending: set[trio.Event] = set()
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._replicas) + len(self._readers) + len(self._pending)

    # ------------------------------------------------------------------ fetches

    def add_fetch(self, event: trio.Event, replica: bool) -> None:
        """A parked fetch: a follower's (``replica``) waits for appends, a consumer's for what it may read."""
        (self._replicas if replica else self._readers).add(event)

    def remove_fetch(self, event: trio.Event, replica: bool) -> None:
        (self._replicas if replica else self._readers).discard(event)

    # ------------------------------------------------------------------ produces

    def add_produce(self, required_offset: int, event: trio.Event) -> None:
        """An acks=all produce, answered once the high watermark reaches ``required_offset``."""
        heapq.heappush(self._produces, (required_offset, next(self._seq), event))
        self._pending.add(event)

    def remove_produce(self, event: trio.Event) -> None:
        """A produce done, timed out or cancelled; its heap entry goes when popped or compacted."""
        self._pending.discard(event)
        if len(self._produces) > 2 * len(self._pending) + 64:  # e.g. timeouts while the HW was stuck
            self._produces = [e for e in self._produces if e[2] in self._pending]
            heapq.heapify(self._produces)

    # ------------------------------------------------------------------ events

    def appended(self) -> None:
        """New data at the log end: followers' fetches may read it."""
        for event in self._replicas:
            event.set()

    def readable_moved(self, high_watermark: int) -> None:
        """The high watermark (or the last stable offset) moved: consumers' fetches may read more,
        and the acks=all produces it now covers are done."""
        for event in self._readers:
            event.set()
        heap = self._produces
        while heap and heap[0][0] <= high_watermark:
            _, _, event = heapq.heappop(heap)
            if event in self._pending:
                self._pending.discard(event)
                event.set()

    def wake_all(self) -> None:
        """Role, epoch or ISR changed: every waiter checks its outcome again."""
        for event in (*self._replicas, *self._readers, *self._pending):
            event.set()
        self._produces.clear()
        self._pending.clear()
