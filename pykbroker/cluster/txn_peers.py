"""Transactions across brokers (cluster mode): what a broker asks of the others.

- **Markers** (Kafka's TransactionMarkerChannelManager): once the coordinator's PrepareCommit or
  PrepareAbort is on its partition's ISR, a COMMIT/ABORT marker goes to every partition of the
  transaction: appended here where this broker leads, sent as WriteTxnMarkers to the leader
  elsewhere. Failed partitions are tried again (a leader may be moving) until every marker is
  written or this broker stops coordinating the transactional id; then the coordinator is told
  (``markers_written``) and writes CompleteCommit/CompleteAbort.
- **Partition checks** (Kafka's AddPartitionsToTxnManager): a transactional produce, and a
  TxnOffsetCommit, reach the leader of a data partition, which asks the transaction coordinator
  whether the partition is in the producer's transaction (AddPartitionsToTxn v4 verify_only), or,
  for a transactions v2 client, adds it (AddPartitionsToTxn v4 without verify_only).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

import trio

from ..protocol.errors import ErrorCode
from ..protocol.messages import API_KEYS
from .model import NO_LEADER
from .peer import PeerError, PeerPool

if TYPE_CHECKING:
    from ..broker import Broker

log = logging.getLogger("pykbroker.txn")

TopicPartition = tuple[str, int]
WRITE_TXN_MARKERS_VERSION = 1
ADD_PARTITIONS_VERSION = 4
REQUEST_TIMEOUT_S = 30
#: Between rounds of markers that could not be written (Kafka retries on its channel's backoff).
RETRY_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
#: Errors on which a marker is not retried: the partition is gone, or the marker is stale.
_FINAL = frozenset({ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.INVALID_PRODUCER_EPOCH,
                    ErrorCode.TRANSACTION_COORDINATOR_FENCED})


class TransactionPeers:
    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        self.pool = PeerPool(self._address, f"pykbroker-{broker.node_id}-txn")
        self._nursery: trio.Nursery | None = None
        #: (transactional id, producer id, epoch) whose markers are being delivered.
        self._delivering: set[tuple[str, int, int]] = set()

    def attach(self, nursery: trio.Nursery | None) -> None:
        self._nursery = nursery

    def _address(self, broker_id: int) -> tuple[str, int] | None:
        cluster = self.broker.cluster
        info = cluster.snapshot.brokers.get(broker_id) if cluster is not None else None
        return (info.host, info.port) if info is not None else None

    def _leader(self, topic: str, index: int) -> int:
        cluster = self.broker.cluster
        state = cluster.snapshot.states.get((topic, index)) if cluster is not None else None
        return state.leader if state is not None else NO_LEADER

    # ------------------------------------------------------------------ markers

    def write_markers(self, transactional_id: str, producer_id: int, epoch: int, commit: bool,
                      coordinator_epoch: int, partitions: frozenset[TopicPartition]) -> set[TopicPartition]:
        """The coordinator's MarkerWriter: every partition is pending until delivered and reported."""
        key = (transactional_id, producer_id, epoch)
        if key not in self._delivering and self._nursery is not None:
            self._delivering.add(key)
            self._nursery.start_soon(self._deliver, key, commit, partitions)
        return set(partitions)

    async def _deliver(self, key: tuple[str, int, int], commit: bool, partitions: frozenset[TopicPartition]) -> None:
        transactional_id, producer_id, epoch = key
        broker = self.broker
        pending = set(partitions)
        try:
            # Kafka sends the markers only once the Prepare state is replicated: were this broker to
            # fail first, the next coordinator must know the transaction was being completed.
            if await broker.replicated_txn_write(transactional_id, ErrorCode.NONE):
                return  # no longer the coordinator, or the ISR is short: tick tries again
            coordinator_epoch = max(broker.txn_coordinator_epoch(transactional_id), 0)
            for backoff in (0.0, *RETRY_BACKOFF_S, *([RETRY_BACKOFF_S[-1]] * 25)):
                await trio.sleep(backoff)
                if broker.txn_coordinator_epoch(transactional_id) < 0:
                    return  # moved to another broker, which completes the transaction itself
                pending = await self._round(producer_id, epoch, commit, coordinator_epoch, pending)
                if not pending:
                    break
            else:
                log.warning("transactional id %s: markers still not written to %s; retried later", transactional_id,
                            ", ".join(f"{t}-{p}" for t, p in sorted(pending)))
            broker.txns.markers_written(transactional_id, producer_id, epoch, pending)
        finally:
            self._delivering.discard(key)

    async def _round(self, producer_id: int, epoch: int, commit: bool, coordinator_epoch: int,
                     partitions: set[TopicPartition]) -> set[TopicPartition]:
        """One attempt at every pending partition, leader by leader; returns those still pending."""
        by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
        for tp in sorted(partitions):
            by_leader[self._leader(*tp)].append(tp)
        pending: set[TopicPartition] = set(by_leader.pop(NO_LEADER, []))
        for leader, tps in by_leader.items():
            if leader == self.broker.node_id:
                codes = {tp: self.broker.write_marker(tp[0], tp[1], producer_id, epoch, commit, coordinator_epoch)
                         for tp in tps}
                await self.broker.replicated_markers(codes)
            else:
                codes = await self._send_markers(leader, producer_id, epoch, commit, coordinator_epoch, tps)
            pending |= {tp for tp, code in codes.items() if code not in _FINAL}
        return pending

    async def _send_markers(self, leader: int, producer_id: int, epoch: int, commit: bool, coordinator_epoch: int,
                            tps: list[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        topics: dict[str, list[int]] = defaultdict(list)
        for topic, index in tps:
            topics[topic].append(index)
        body = {"markers": [{"producer_id": producer_id, "producer_epoch": epoch, "transaction_result": commit,
                             "coordinator_epoch": coordinator_epoch,
                             "topics": [{"name": t, "partition_indexes": ps} for t, ps in topics.items()]}]}
        try:
            r = await self.pool.request(leader, API_KEYS["WRITE_TXN_MARKERS"], WRITE_TXN_MARKERS_VERSION, body,
                                        REQUEST_TIMEOUT_S)
        except PeerError as e:
            log.info("transaction markers to broker %d not sent: %s", leader, e)
            return {tp: ErrorCode.NETWORK_EXCEPTION for tp in tps}
        codes = {tp: ErrorCode.UNKNOWN_SERVER_ERROR for tp in tps}
        for marker in r.markers:
            for t in marker.topics:
                for p in t.partitions:
                    codes[(t.name, p.partition_index)] = ErrorCode(p.error_code)
        return codes

    # ------------------------------------------------------------------ partition checks

    async def check_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                               partitions: list[TopicPartition], add: bool
                               ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """Ask the transactional id's coordinator (another broker) to verify or add ``partitions``."""
        placement = self.broker.txn_placement
        assert placement is not None
        code, leader = await placement.coordinator_for(transactional_id)
        if leader is None:
            return code, {}
        topics: dict[str, list[int]] = defaultdict(list)
        for topic, index in partitions:
            topics[topic].append(index)
        body = {"transactions": [{"transactional_id": transactional_id, "producer_id": producer_id,
                                  "producer_epoch": epoch, "verify_only": not add,
                                  "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}]}
        try:
            r = await self.pool.request(leader.broker_id, API_KEYS["ADD_PARTITIONS_TO_TXN"], ADD_PARTITIONS_VERSION,
                                        body, REQUEST_TIMEOUT_S)
        except PeerError as e:
            log.info("transactional id %s: its coordinator %d did not answer: %s", transactional_id,
                     leader.broker_id, e)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, {}
        if r.error_code:
            return ErrorCode(r.error_code), {}
        verified = {(t.name, p.partition_index): ErrorCode(p.partition_error_code)
                    for txn in r.results_by_transaction for t in txn.topic_results for p in t.results_by_partition}
        return ErrorCode.NONE, verified
