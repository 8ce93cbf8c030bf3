"""Fetch sessions (KIP-227): Kafka's FetchSessionCache, so consumers send incremental fetches.

A full fetch with session epoch 0 opens a session holding the partitions it named (with their
fetch offsets and sizes); the next fetches name the session and its next epoch, list only the
partitions whose position changed, and get back only the partitions with something new: records,
an error, or a moved high watermark, last stable offset or log start offset. Epoch -1 closes a
session. A wrong id answers FETCH_SESSION_ID_NOT_FOUND, a wrong epoch INVALID_FETCH_SESSION_EPOCH,
and the client starts over with a full fetch, as with Kafka.

The cache holds at most ``max.incremental.fetch.session.cache.slots`` sessions. When it is full, a
new session takes the slot of the least recently used one if that was idle for two minutes or has
fewer partitions (Kafka's eviction rule, simplified); otherwise the fetch is served without a
session (session id 0), which clients accept.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Hashable

INITIAL_EPOCH, FINAL_EPOCH, NO_SESSION = 0, -1, 0
EVICTION_S = 120.0


@dataclass
class CachedPartition:
    """What the session remembers of one partition: the client's position, and what it was last told."""

    topic: str | None
    topic_id: object
    partition: int
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1

    def changed(self, response: dict) -> bool:
        """Kafka's CachedPartition.maybeUpdateResponseData: is the partition in an incremental response?
        Records the values sent when it is."""
        hw, lso, start = response["high_watermark"], response["last_stable_offset"], response["log_start_offset"]
        dirty = (response["error_code"] != 0 or len(response["records"]) > 0
                 or (hw, lso, start) != (self.high_watermark, self.last_stable_offset, self.log_start_offset))
        if dirty:
            self.high_watermark, self.last_stable_offset, self.log_start_offset = hw, lso, start
        return dirty


@dataclass
class FetchSession:
    session_id: int
    #: The epoch the next incremental fetch must carry.
    epoch: int = 1
    partitions: "OrderedDict[Hashable, CachedPartition]" = field(default_factory=OrderedDict)
    last_used: float = field(default_factory=time.monotonic)

    def rotate(self, keys: list[Hashable]) -> None:
        """Partitions that just returned records go to the end, so a size-limited response does not
        always favour the same ones (as Kafka's session does)."""
        for key in keys:
            self.partitions.move_to_end(key)


class FetchSessionCache:
    def __init__(self, max_slots: int = 1000) -> None:
        self.max_slots = max_slots
        self._sessions: "OrderedDict[int, FetchSession]" = OrderedDict()  # least recently used first
        #: Incremental fetches served (what tests and metrics look at).
        self.incremental_fetches = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: int) -> FetchSession | None:
        session = self._sessions.get(session_id)
        if session is not None:
            self.incremental_fetches += 1
            session.last_used = time.monotonic()
            self._sessions.move_to_end(session_id)
        return session

    def remove(self, session_id: int) -> None:
        self._sessions.pop(session_id, None)

    def create(self, partitions: "OrderedDict[Hashable, CachedPartition]") -> FetchSession | None:
        """A new session for a full fetch, or None when no slot can be had."""
        if self.max_slots <= 0:
            return None
        if len(self._sessions) >= self.max_slots:
            oldest_id, oldest = next(iter(self._sessions.items()))
            idle = time.monotonic() - oldest.last_used
            if idle < EVICTION_S and len(oldest.partitions) >= len(partitions):
                return None
            del self._sessions[oldest_id]
        session_id = random.randrange(1, 2**31)
        while session_id in self._sessions:
            session_id = random.randrange(1, 2**31)
        session = FetchSession(session_id, partitions=partitions)
        self._sessions[session_id] = session
        return session
