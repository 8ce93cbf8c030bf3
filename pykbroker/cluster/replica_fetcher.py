"""Followers copy their leaders' logs: one fetcher task per leader broker (Kafka's ReplicaFetcherThread).

A partition joins its leader's fetcher when this broker becomes its follower, first in the
*truncating* state: an OffsetForLeaderEpoch request (with our replica id) asks where the leader's
history of our latest epoch ends, and we cut our log there (KIP-101), asking again with an older
epoch while the leader answers with one we do not have (KIP-279). Then Fetch requests (v12, with
our replica id, sessionless) ask for everything from our log end; the leader long-polls them
(``replica.fetch.wait.max.ms``), records our position and answers with its high watermark.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import trio

from ..log.errors import KafkaStorageError
from ..protocol.errors import ErrorCode
from ..protocol.records import RecordError
from .peer import PeerConnection, PeerError
from .partition import Partition
from .roles import append_replicated, truncate_to

if TYPE_CHECKING:
    from .model import BrokerInfo

log = logging.getLogger("pykbroker.fetcher")

FETCH, OFFSET_FOR_LEADER_EPOCH = 1, 23
FETCH_VERSION, EPOCH_VERSION = 12, 3
RETRY_S = 0.2
MAX_TRUNCATION_ROUNDS = 10
#: Errors after which the partition waits for ZooKeeper to tell it the new leader or epoch.
ROLE_ERRORS = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.FENCED_LEADER_EPOCH,
                         ErrorCode.UNKNOWN_LEADER_EPOCH, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION})


@dataclass
class Target:
    partition: Partition
    leader_epoch: int
    truncating: bool = True


class ReplicaFetcher:
    """Fetches every partition this broker follows from one leader, on one connection."""

    def __init__(self, node_id: int, leader: "BrokerInfo", max_wait_ms: int, max_bytes: int) -> None:
        self.node_id = node_id
        self.leader = leader
        self.max_wait_ms, self.max_bytes = max_wait_ms, max_bytes
        self.targets: dict[tuple[str, int], Target] = {}
        self._added = trio.Event()
        self.cancel_scope = trio.CancelScope()

    def add(self, partition: Partition, leader_epoch: int) -> None:
        self.targets[(partition.topic, partition.index)] = Target(partition, leader_epoch)
        self._added.set()

    def remove(self, key: tuple[str, int]) -> None:
        self.targets.pop(key, None)

    async def run(self) -> None:
        with self.cancel_scope:
            while True:
                if not self.targets:
                    self._added = trio.Event()
                    await self._added.wait()
                try:
                    conn = await PeerConnection.connect(self.leader.host, self.leader.port,
                                                        f"replica-fetcher-{self.node_id}")
                except OSError as e:
                    log.info("cannot reach leader %d at %s:%d: %s", self.leader.broker_id, self.leader.host,
                             self.leader.port, e)
                    await trio.sleep(RETRY_S)
                    continue
                try:
                    while self.targets:
                        await self._round(conn)
                except (OSError, PeerError, trio.BrokenResourceError) as e:
                    log.info("fetching from leader %d: %s; reconnecting", self.leader.broker_id, e)
                    await trio.sleep(RETRY_S)
                finally:
                    with trio.CancelScope(shield=True):
                        await conn.aclose()

    async def _round(self, conn: PeerConnection) -> None:
        truncating = [t for t in self.targets.values() if t.truncating]
        if truncating:
            await self._truncate(conn, truncating)
        ready = [t for t in self.targets.values() if not t.truncating]
        if ready:
            await self._fetch(conn, ready)
        elif not truncating:
            await trio.sleep(RETRY_S)

    # ------------------------------------------------------------------ truncation

    async def _truncate(self, conn: PeerConnection, targets: list[Target]) -> None:
        for target in targets:
            if await self._truncate_one(conn, target):
                target.truncating = False
            else:
                await trio.sleep(RETRY_S)

    async def _truncate_one(self, conn: PeerConnection, target: Target) -> bool:
        p = target.partition
        assert p.epochs is not None
        for _ in range(MAX_TRUNCATION_ROUNDS):
            ours = p.epochs.latest_epoch
            if ours < 0:
                # No epochs: nothing written in a known epoch; keep only what was committed.
                await truncate_to(p, p.high_watermark)
                return True
            resp = await conn.request(OFFSET_FOR_LEADER_EPOCH, EPOCH_VERSION, {
                "replica_id": self.node_id, "topics": [{"topic": p.topic, "partitions": [
                    {"partition": p.index, "current_leader_epoch": target.leader_epoch, "leader_epoch": ours}]}]})
            answer = resp.topics[0].partitions[0]
            if answer.error_code:
                log.info("%s-%d: OffsetForLeaderEpoch from leader %d: %s", p.topic, p.index,
                         self.leader.broker_id, ErrorCode(answer.error_code).name)
                return False
            if answer.leader_epoch < 0:
                await truncate_to(p, p.high_watermark)
                return True
            epoch, end = p.epochs.end_offset_for(answer.leader_epoch, p.log_end_offset)
            if epoch == answer.leader_epoch or epoch < 0:
                await truncate_to(p, min(answer.end_offset, end) if epoch >= 0 else min(answer.end_offset, p.high_watermark))
                return True
            await truncate_to(p, min(answer.end_offset, end))  # we never had the leader's epoch: ask again, older
        return True

    # ------------------------------------------------------------------ fetching

    async def _fetch(self, conn: PeerConnection, targets: list[Target]) -> None:
        by_topic: dict[str, list[Target]] = {}
        for t in targets:
            by_topic.setdefault(t.partition.topic, []).append(t)
        resp = await conn.request(FETCH, FETCH_VERSION, {
            "replica_id": self.node_id, "max_wait_ms": self.max_wait_ms, "min_bytes": 1,
            "max_bytes": self.max_bytes, "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [_fetch_partition(t, self.max_bytes) for t in ts]}
                       for topic, ts in by_topic.items()],
            "forgotten_topics_data": [], "rack_id": ""})
        if resp.error_code:
            log.info("fetch from leader %d: %s", self.leader.broker_id, ErrorCode(resp.error_code).name)
            await trio.sleep(RETRY_S)
            return
        stalled = True
        for topic in resp.responses:
            for part in topic.partitions:
                target = self.targets.get((topic.topic, part.partition_index))
                if target is not None and await self._handle(target, part):
                    stalled = False
        if stalled:
            await trio.sleep(RETRY_S)

    async def _handle(self, target: Target, part: "object") -> bool:
        """One partition of a fetch response; False when it could not progress (an error)."""
        p = target.partition
        code = part.error_code  # type: ignore[attr-defined]
        if code == ErrorCode.NONE:
            try:
                await append_replicated(p, part.records or b"", part.high_watermark)  # type: ignore[attr-defined]
            except (RecordError, KafkaStorageError) as e:
                log.error("%s-%d: cannot append what leader %d sent: %s; checking for divergence",
                          p.topic, p.index, self.leader.broker_id, e)
                target.truncating = True
                return False
            return True
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            target.truncating = True  # e.g. a leader that is behind us after an unclean change: re-check
            return False
        if code not in ROLE_ERRORS:
            log.warning("%s-%d: fetch from leader %d: %s", p.topic, p.index, self.leader.broker_id,
                        ErrorCode(code).name)
        return False


def _fetch_partition(t: Target, max_bytes: int) -> dict[str, object]:
    p = t.partition
    assert p.epochs is not None
    return {"partition": p.index, "current_leader_epoch": t.leader_epoch, "fetch_offset": p.log_end_offset,
            "last_fetched_epoch": p.epochs.latest_epoch, "log_start_offset": p.log_start_offset,
            "partition_max_bytes": max_bytes}


class FetcherManager:
    """The fetchers of this broker, one per leader; started in the cluster node's nursery."""

    def __init__(self, node_id: int, max_wait_ms: int, max_bytes: int) -> None:
        self.node_id, self.max_wait_ms, self.max_bytes = node_id, max_wait_ms, max_bytes
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def following(self, key: tuple[str, int]) -> tuple[int, int] | None:
        """(leader id, leader epoch) this partition is fetched with, if it is."""
        for leader_id, f in self.fetchers.items():
            target = f.targets.get(key)
            if target is not None:
                return leader_id, target.leader_epoch
        return None

    def follow(self, partition: Partition, leader: "BrokerInfo", leader_epoch: int) -> None:
        key = (partition.topic, partition.index)
        self.stop_following(key)
        fetcher = self.fetchers.get(leader.broker_id)
        if fetcher is not None and (fetcher.leader.host, fetcher.leader.port) != (leader.host, leader.port):
            fetcher.cancel_scope.cancel()  # the leader came back on another address
            fetcher = None
        if fetcher is None:
            assert self._nursery is not None
            fetcher = self.fetchers[leader.broker_id] = ReplicaFetcher(self.node_id, leader, self.max_wait_ms,
                                                                       self.max_bytes)
            self._nursery.start_soon(fetcher.run)
        fetcher.add(partition, leader_epoch)

    def stop_following(self, key: tuple[str, int]) -> None:
        for f in self.fetchers.values():
            f.remove(key)

    def keys(self) -> Iterable[tuple[str, int]]:
        return [k for f in self.fetchers.values() for k in f.targets]
