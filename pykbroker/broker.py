"""The broker: owns the stores, dispatches decoded requests to handlers, runs background work.

Handlers see the broker through the small surface below (topics, partitions, producer ids,
fetch wake-ups); they never touch a socket, and the stores never see a request.
"""

from __future__ import annotations

import base64
import logging
import math
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Protocol

import trio

from .config import BrokerConfig, parse_listener, parse_listeners
from .coordinator.consumer_group import ConsumerGroupCoordinator, ConsumerGroupLimits
from .coordinator.group_coordinator import GroupCoordinator
from .coordinator.offset_coordinator import GroupLimits
from .coordinator.transaction_coordinator import TV2, TransactionCoordinator, TxnLimits
from .log.producer_state import CoordinatorFencedError, InvalidProducerEpochError
from .handlers import HANDLERS, RequestContext
from .cluster.model import BrokerInfo
from .cluster.partition import Partition
from .cluster.roles import wait_for_replication
from .cluster.fetch_sessions import FetchSessionCache
from .cluster.partition_manager import PartitionManager
from .cluster.log_cleaner import CleanerConfig, LogCleaner
from .log.checkpoint import write_atomic, write_int
from .log.errors import KafkaStorageError, NotLeaderError, StartupError, TopicExistsError, UnreadableMetadataError
from .log.manager import LogManager, TopicInfo, remove_dirs
from .log.partition_log import PartitionLog
from .log.segment import now_ms
from .protocol.errors import ErrorCode
from .protocol.frame import Request, UnsupportedApiError
from .quotas import ClientQuotas, QuotaStore
from .quotas.entities import QuotaError
from .quotas.store import FILE_NAME as QUOTA_FILE, Alteration, AlterResult
from .protocol.messages import API_NAMES
from .protocol.primitives import Msg
from .server.connection import ConnectionInfo, ServerObserver
from .server.limits import ServerLimits
from .server.listener import serve
from .server.quotas import parse_overrides
from .tools.config_file import parse_properties

if TYPE_CHECKING:
    from .cluster.coordinator_placement import CoordinatorPlacement
    from .cluster.node import ClusterNode
    from .cluster.txn_peers import TransactionPeers

log = logging.getLogger("pykbroker")

PRODUCER_ID_BLOCK = 1000
PRODUCER_ID_BLOCK_FILE = "producer-id-block"
OFFSETS_TOPIC = "__consumer_offsets"
#: Kafka's Topic.isInternal: exactly these two; any other "__name" is an ordinary topic.
TXN_STATE_TOPIC = "__transaction_state"
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, TXN_STATE_TOPIC})
GROUP_TICK_S = 0.1
#: How long markers wait for their ISR (Kafka: the broker's request.timeout.ms, 30 s).
MARKER_REPLICATION_TIMEOUT_S = 30
#: A marker not written: the code WriteTxnMarkers answers for its partition, and how loud to log it.
_MARKER_ERRORS: tuple[tuple[type[Exception], ErrorCode, int], ...] = (
    (InvalidProducerEpochError, ErrorCode.INVALID_PRODUCER_EPOCH, logging.WARNING),
    (CoordinatorFencedError, ErrorCode.TRANSACTION_COORDINATOR_FENCED, logging.WARNING),
    (NotLeaderError, ErrorCode.NOT_LEADER_OR_FOLLOWER, logging.INFO),
    (KafkaStorageError, ErrorCode.KAFKA_STORAGE_ERROR, logging.ERROR),
)


@dataclass(frozen=True)
class Topic:
    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: Mapping[str, str]
    is_internal: bool = False


class Broker:
    #: Instrumentation hook for the server (pykbroker.metrics sets it before run); None: no metrics.
    observer: ServerObserver | None = None

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id: int = config.node_id
        self.data_dir = config.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_id = self._load_cluster_id()
        self._producer_id_limit = self._read_producer_id_block()
        self._next_producer_id = self._producer_id_limit  # the first id asked for takes a new block
        self._producer_id_lock = trio.Lock()
        self.logs = LogManager.open(self.data_dir, config.log_config)
        self.partitions = PartitionManager(self.logs, self.node_id)
        #: Cluster mode (zookeeper.connect set): the ZooKeeper member; None: the single-node broker.
        self.cluster: ClusterNode | None = None
        if config.zookeeper_connect:
            from .cluster.node import ClusterNode  # kazoo is imported only by a broker that joins a cluster
            self.cluster = self.partitions.cluster = ClusterNode(self)
        self.cleaner = LogCleaner(self.partitions.all_partitions, CleanerConfig.from_broker(config))
        self.fetch_sessions = FetchSessionCache(config.max_incremental_fetch_session_cache_slots)
        self.client_quotas = ClientQuotas(self._read_client_quotas(), config.quota_window_num,
                                          config.quota_window_size_seconds)
        self._quota_lock = trio.Lock()
        #: Serialises topic metadata changes, whose disk part runs in a worker thread.
        self._topic_lock = trio.Lock()
        # Directories renamed *-delete, removed in a worker thread by _remove_deleted_dirs.
        self._doomed_send, self._doomed_recv = trio.open_memory_channel[list[Path]](math.inf)
        pending = self.logs.take_pending_deletions()
        if pending:
            log.info("removing %d directory(ies) of earlier topic deletions in the background", len(pending))
            self._doomed_send.send_nowait(pending)
        host, port = config.listen_host_port
        unserved = [f"{name}://{h}:{p}" for name, h, p in parse_listeners(config.listeners)[1:]]
        if unserved:
            log.warning("listeners %s are not served: pykbroker serves one PLAINTEXT listener (the first)",
                        ", ".join(unserved))
        self.advertised: tuple[str, int] = (host, port)
        self.bound: tuple[str, int] | None = None
        self.groups = GroupCoordinator(self._append_offsets, self._offsets_partitions(),
                                       config.group_initial_rebalance_delay_ms,
                                       config.offsets_retention_minutes * 60_000, GroupLimits.from_config(config))
        self.consumer_groups = ConsumerGroupCoordinator(
            self._topic_layout, ConsumerGroupLimits.from_config(config), self.groups.status,
            lambda: [name for name in self.logs.topics if name not in INTERNAL_TOPICS])
        self.groups.consumer_groups = self.consumer_groups
        txn_topic = self.logs.topics.get(TXN_STATE_TOPIC)
        #: Cluster mode: where the coordinators' partitions are led, and the transaction requests to
        #: other brokers (markers, partition checks); None on a single node, which leads them all.
        self.group_placement: CoordinatorPlacement | None = None
        self.txn_placement: CoordinatorPlacement | None = None
        self.txn_peers: TransactionPeers | None = None
        if self.cluster is not None:
            from .cluster.txn_peers import TransactionPeers
            self.txn_peers = TransactionPeers(self)
        self.txns = TransactionCoordinator(
            self._append_txn_state, txn_topic.partitions if txn_topic else config.transaction_state_log_num_partitions,
            self.txn_peers.write_markers if self.txn_peers is not None else self._write_markers,
            self.next_producer_id, TxnLimits(config.transaction_max_timeout_ms, config.transactional_id_expiration_ms))
        if self.cluster is not None:
            from .cluster.coordinator_placement import CoordinatorPlacement, InternalTopic
            self.group_placement = CoordinatorPlacement(self, InternalTopic(
                OFFSETS_TOPIC, config.offsets_topic_num_partitions, config.offsets_topic_replication_factor,
                "offsets.topic.replication.factor", config.offsets_topic_segment_bytes, "groups"), self.groups)
            self.txn_placement = CoordinatorPlacement(self, InternalTopic(
                TXN_STATE_TOPIC, config.transaction_state_log_num_partitions,
                config.transaction_state_log_replication_factor, "transaction.state.log.replication.factor",
                config.transaction_state_log_segment_bytes, "transactional ids"), self.txns)
        self._closed = False
        #: Set once the coordinators have replayed their internal topics (the test fixture waits for it).
        self.coordinators_loaded = trio.Event()
        if self.group_placement is None:  # in a cluster, partitions load when this broker leads them
            for partition in range(self.groups.partitions):
                self.groups.begin_load(partition)  # served once run() has replayed it
        if txn_topic is not None and self.txn_placement is None:
            for partition in range(txn_topic.partitions):
                self.txns.begin_load(partition)

    def _topic_layout(self, name: str) -> tuple[uuid.UUID, int] | None:
        info = self.logs.topics.get(name)
        return (info.topic_id, info.partitions) if info else None

    # ------------------------------------------------------------------ __consumer_offsets

    def _offsets_partitions(self) -> int:
        topic = self.logs.topics.get(OFFSETS_TOPIC)
        if topic is None and self.cluster is not None:
            return self.config.offsets_topic_num_partitions  # created through ZooKeeper on first need
        if topic is None:
            topic = self.logs.create_topic(OFFSETS_TOPIC, self.config.offsets_topic_num_partitions,
                                           compacted_topic_configs(self.config.offsets_topic_segment_bytes))
        return topic.partitions

    async def _load_coordinators(self) -> None:
        """A single node leads every partition of the internal topics: the coordinators load them
        all, reading in a worker thread a few MiB at a time and replaying on the loop in between,
        while their groups and transactional ids answer COORDINATOR_LOAD_IN_PROGRESS (as Kafka)."""
        if self.group_placement is None:
            await self._load(OFFSETS_TOPIC, self.groups)
        if TXN_STATE_TOPIC in self.logs.topics and self.txn_placement is None:
            await self._load(TXN_STATE_TOPIC, self.txns)
        self.coordinators_loaded.set()
        await self.cleaner.run()  # after the replay, which reads the internal topics' segments in a thread

    async def _load(self, topic: str, coordinator: Coordinator) -> None:
        for p in range(coordinator.partitions):
            plog = self.logs.get_log(topic, p)
            start, batches = plog.log_start_offset, 0
            while True:
                chunk, start = await trio.to_thread.run_sync(_read_chunk, plog, start)
                if not chunk:
                    break
                batches += coordinator.replay(p, chunk)
            coordinator.finish_load(p)
            if batches:
                log.info("%s-%d: loaded %d batch(es)", topic, p, batches)

    async def replicated_group_write(self, group_id: str, code: ErrorCode) -> ErrorCode:
        """A successful coordinator write is answered once the ISR has it (cluster mode)."""
        if code or self.group_placement is None:
            return code
        return await self.group_placement.replicated(group_id)

    async def replicated_txn_write(self, transactional_id: str, code: ErrorCode) -> ErrorCode:
        """The transaction coordinator's writes, likewise."""
        if code or self.txn_placement is None:
            return code
        return await self.txn_placement.replicated(transactional_id)

    def _append_offsets(self, partition: int, batch: bytes) -> None:
        self._append_internal(OFFSETS_TOPIC, partition, batch)

    def _append_txn_state(self, partition: int, batch: bytes) -> None:
        self._append_internal(TXN_STATE_TOPIC, partition, batch)

    def _append_internal(self, topic: str, partition: int, batch: bytes) -> None:
        target = self.partitions.get(topic, partition)
        if target is None:
            raise KafkaStorageError(f"{topic}-{partition} is not available")
        target.append_internal(batch)

    # ------------------------------------------------------------------ transactions

    async def transaction_state_ready(self) -> None:
        """Kafka creates __transaction_state on the first transactional request; so do we (in a
        cluster, FindCoordinator creates it through ZooKeeper)."""
        if TXN_STATE_TOPIC in self.logs.topics or self.cluster is not None:
            return
        async with self._topic_lock:
            if TXN_STATE_TOPIC not in self.logs.topics:
                await self._create_topic_locked(TXN_STATE_TOPIC, self.txns.partitions,
                                                compacted_topic_configs(self.config.transaction_state_log_segment_bytes))
                for p in range(self.txns.partitions):
                    self.txns.begin_load(p)
                    self.txns.finish_load(p)

    def _write_markers(self, transactional_id: str, producer_id: int, epoch: int, commit: bool,
                       coordinator_epoch: int, partitions: frozenset[tuple[str, int]]) -> set[tuple[str, int]]:
        """WriteTxnMarkers inside the broker (single node): a COMMIT/ABORT marker on every partition
        of the transaction; returns those where it could not be written (the coordinator retries)."""
        return {(topic, index) for topic, index in sorted(partitions)
                if self.write_marker(topic, index, producer_id, epoch, commit, coordinator_epoch)
                in (ErrorCode.KAFKA_STORAGE_ERROR, ErrorCode.NOT_LEADER_OR_FOLLOWER)}

    def write_marker(self, topic: str, index: int, producer_id: int, epoch: int, commit: bool,
                     coordinator_epoch: int) -> ErrorCode:
        """One COMMIT/ABORT marker, as Kafka's WriteTxnMarkers answers it per partition; on
        __consumer_offsets the group coordinator then applies or drops the transaction's offsets."""
        partition = self.partitions.get(topic, index)
        if partition is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION  # deleted since: nothing to mark
        try:
            partition.append_marker(producer_id, epoch, commit, coordinator_epoch)
        except tuple(cls for cls, _, _ in _MARKER_ERRORS) as e:
            code, level = next((code, level) for cls, code, level in _MARKER_ERRORS if isinstance(e, cls))
            log.log(level, "%s-%d: transaction marker not written: %s", topic, index, e)
            return code
        if topic == OFFSETS_TOPIC:
            self.groups.complete_txn(index, producer_id, commit)
        return ErrorCode.NONE

    async def replicated_markers(self, codes: dict[tuple[str, int], ErrorCode]) -> None:
        """Markers written here are acknowledged once their partition's ISR has them (Kafka appends
        them with acks=-1); a failed wait replaces the partition's code."""
        deadline = trio.current_time() + MARKER_REPLICATION_TIMEOUT_S
        for (topic, index), code in codes.items():
            partition = self.partitions.get(topic, index)
            if code or partition is None or partition.replication is None:
                continue
            codes[(topic, index)] = await wait_for_replication(partition, partition.log_end_offset,
                                                               partition.leader_epoch, deadline)

    def txn_coordinator_epoch(self, transactional_id: str) -> int:
        """The leader epoch at which this broker coordinates the id's partition (0 on a single node;
        -1 in a cluster when it does not)."""
        return self.txn_placement.epoch(transactional_id) if self.txn_placement is not None else 0

    async def txn_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                             partitions: list[tuple[str, int]], add: bool
                             ) -> tuple[ErrorCode, dict[tuple[str, int], ErrorCode]]:
        """Is each partition in the producer's ongoing transaction (``add``: transactions v2, add it)?
        Asked of the coordinator: this broker's, or in a cluster the one leading the id's partition
        (Kafka's AddPartitionsToTxnManager)."""
        if self.txn_peers is not None and self.txn_coordinator_epoch(transactional_id) < 0:
            return await self.txn_peers.check_partitions(transactional_id, producer_id, epoch, partitions, add)
        if not add:
            return self.txns.verify_partitions(transactional_id, producer_id, epoch, partitions)
        code = self.txns.add_partitions(transactional_id, producer_id, epoch, partitions, TV2)
        code = await self.replicated_txn_write(transactional_id, code)
        return ErrorCode.NONE, {tp: code for tp in partitions}

    # ------------------------------------------------------------------ identity

    def _load_cluster_id(self) -> str:
        """Like Kafka's meta.properties: the cluster id is chosen once and kept with the data."""
        path = self.data_dir / "meta.properties"
        try:
            props = _read_properties(path)
        except (OSError, ValueError) as exc:
            raise UnreadableMetadataError(f"cannot read {path}: {exc}; refusing to start (repair the file)") from exc
        configured = self.config.cluster_id
        if props.get("cluster.id") and configured and props["cluster.id"] != configured:
            raise StartupError(f"{path} belongs to cluster {props['cluster.id']}, not the configured {configured}")
        #: The id this broker's data (or configuration) belongs to, if any: in a cluster, it must be
        #: the one in ZooKeeper.
        self._claimed_cluster_id: str | None = props.get("cluster.id") or configured or None
        cluster_id = self._claimed_cluster_id or base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if props.get("cluster.id") != cluster_id and not self.config.zookeeper_connect:
            write_atomic(path, self._meta_properties(cluster_id))
        return cluster_id

    def _meta_properties(self, cluster_id: str) -> bytes:
        return f"version=1\ncluster.id={cluster_id}\nnode.id={self.node_id}\n".encode()

    async def join_cluster_id(self, cluster_id: str) -> None:
        """In a cluster the id is ZooKeeper's /cluster/id (the first broker proposed its own): it is
        adopted and kept in meta.properties; data of another cluster refuses to start, as Kafka's
        InconsistentClusterIdException."""
        path = self.data_dir / "meta.properties"
        claimed = self._claimed_cluster_id
        if claimed is not None and claimed != cluster_id:
            raise StartupError(f"{path} (or cluster.id) names cluster {claimed}, but ZooKeeper's /cluster/id is "
                               f"{cluster_id}: this data belongs to another cluster; refusing to start")
        if claimed is None:
            await trio.to_thread.run_sync(write_atomic, path, self._meta_properties(cluster_id))
            self._claimed_cluster_id = cluster_id
        self.cluster_id = cluster_id

    def _read_producer_id_block(self) -> int:
        """End of the last producer-id block handed out (0: none yet). Unreadable: refuse to start,
        since guessing low would issue ids again that producers still use."""
        path = self.data_dir / PRODUCER_ID_BLOCK_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise UnreadableMetadataError(f"cannot read {path}: {exc}") from exc
        try:
            value = int(text.strip())
            if value < 0:
                raise ValueError("negative")
        except ValueError:
            raise UnreadableMetadataError(
                f"{path} does not hold a producer id ({text[:40]!r}); refusing to start so that no producer id "
                f"is issued twice: write in it a number above every producer id in use") from None
        return value

    def _read_client_quotas(self) -> QuotaStore:
        """The quotas AlterClientQuotas persisted; unreadable: refuse to start rather than run unthrottled."""
        path = self.data_dir / QUOTA_FILE
        try:
            return QuotaStore.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return QuotaStore()
        except (OSError, ValueError, KeyError, TypeError, QuotaError) as exc:
            raise UnreadableMetadataError(f"cannot read client quotas from {path}: {exc}; refusing to start "
                                          f"(repair or remove the file)") from exc

    async def alter_client_quotas(self, alterations: list[Alteration], validate_only: bool,
                                  resolvable: frozenset[str] = frozenset()) -> list[AlterResult]:
        """AlterClientQuotas: the new quotas are written (worker thread) before they apply, so an
        acknowledged change survives a crash. KafkaStorageError when the file cannot be written."""
        async with self._quota_lock:
            new, results = self.client_quotas.store.alter(alterations, resolvable)
            if validate_only or new == self.client_quotas.store:
                return results
            path = self.data_dir / QUOTA_FILE
            try:
                await trio.to_thread.run_sync(write_atomic, path, new.to_json().encode())
            except OSError as exc:
                raise KafkaStorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
            self.client_quotas.install(new)
            return results

    async def next_producer_id(self) -> int:
        """Producer ids are taken in blocks whose end is persisted (off the event loop) first,
        so none is ever reused. KafkaStorageError if the block cannot be persisted."""
        async with self._producer_id_lock:
            if self._next_producer_id >= self._producer_id_limit and self.cluster is not None:
                # A cluster's brokers share one id space: blocks come from ZooKeeper.
                start = await self.cluster.zk.allocate_producer_ids(self.node_id, PRODUCER_ID_BLOCK)
                self._next_producer_id, self._producer_id_limit = start, start + PRODUCER_ID_BLOCK
            if self._next_producer_id >= self._producer_id_limit:
                path = self.data_dir / PRODUCER_ID_BLOCK_FILE
                start = self._producer_id_limit
                try:
                    await trio.to_thread.run_sync(write_int, path, start + PRODUCER_ID_BLOCK)
                except OSError as exc:
                    raise KafkaStorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
                self._next_producer_id, self._producer_id_limit = start, start + PRODUCER_ID_BLOCK
            pid = self._next_producer_id
            self._next_producer_id += 1
            return pid

    # ------------------------------------------------------------------ topics

    def topics(self) -> list[Topic]:
        return [_topic(t) for t in self.logs.topics.values()]

    def topic(self, name: str) -> Topic | None:
        info = self.logs.topics.get(name)
        return _topic(info) if info else None

    def topic_by_id(self, topic_id: uuid.UUID) -> Topic | None:
        info = self.logs.topic_by_id(topic_id)
        return _topic(info) if info else None

    async def create_topic(self, name: str, partitions: int, configs: Mapping[str, str | None],
                           validate_only: bool = False, replication_factor: int = 1,
                           assignments: Mapping[int, list[int]] | None = None, timeout_s: float = 30) -> Topic:
        """CreateTopics: validated and installed on the event loop, written in a worker thread.
        In a cluster the topic is created in ZooKeeper, and every broker installs it from there."""
        if self.cluster is not None and name not in INTERNAL_TOPICS:
            info = self.logs.prepare_create_topic(name, partitions, configs, reserve=False)  # validates
            if validate_only:
                return _topic(info)
            topic_id = await self.cluster.create_topic(name, partitions, replication_factor, assignments, configs,
                                                       timeout_s)
            return self.topic(name) or Topic(name, topic_id, partitions, dict(info.configs))
        async with self._topic_lock:
            return await self._create_topic_locked(name, partitions, configs, validate_only)

    async def install_cluster_topic(self, name: str, topic_id: uuid.UUID, partitions: int,
                                    configs: Mapping[str, str | None]) -> None:
        """A topic of the cluster (seen in ZooKeeper) gets its local directories, with the cluster's id."""
        async with self._topic_lock:
            if name not in self.logs.topics:
                await self._create_topic_locked(name, partitions, configs, topic_id=topic_id)

    async def _create_topic_locked(self, name: str, partitions: int, configs: Mapping[str, str | None],
                                   validate_only: bool = False, topic_id: uuid.UUID | None = None) -> Topic:
        info = self.logs.prepare_create_topic(name, partitions, configs, reserve=not validate_only, topic_id=topic_id)
        if validate_only:
            return _topic(info)
        try:
            plogs = await trio.to_thread.run_sync(self.logs.write_new_topic, info)
            self.logs.install_topic(info, plogs)
        finally:
            self.logs.abort_create(name)
        log.info("created topic %s with %d partition(s)", name, partitions)
        return _topic(info)

    async def auto_create_topic(self, name: str) -> Topic:
        """Metadata's auto-creation; a concurrent request that created it first wins."""
        try:
            return await self.create_topic(name, self.config.num_partitions, {},
                                           replication_factor=self.config.default_replication_factor)
        except TopicExistsError:
            topic = self.topic(name)
            if topic is None:
                raise
            return topic

    async def create_partitions(self, name: str, total: int, validate_only: bool = False) -> None:
        async with self._topic_lock:
            new = self.logs.prepare_create_partitions(name, total)
            if not validate_only:
                plogs = await trio.to_thread.run_sync(self.logs.write_new_partitions, new)
                self.logs.install_partitions(new, plogs)
                log.info("topic %s now has %d partitions", name, total)

    async def alter_topic_configs(self, name: str,
                                  change: Callable[[dict[str, str | None], dict[str, str]], Mapping[str, str | None]],
                                  validate_only: bool = False) -> None:
        """IncrementalAlterConfigs: `change` maps (overrides, effective configs) to the new overrides,
        evaluated under the topic lock so that concurrent alterations of one topic all apply."""
        async with self._topic_lock:
            info = self.logs.topic(name)
            new = self.logs.prepare_topic_configs(name, change(dict(info.configs), info.config.to_kafka_configs()))
            if not validate_only:
                await trio.to_thread.run_sync(self.logs.write_topic_configs, new)
                self.logs.install_topic_configs(new)

    async def delete_topic(self, name: str) -> None:
        """DeleteTopics: directories renamed *-delete (worker thread), forgotten, then removed in
        the background. Like Kafka, internal topics may be deleted too; __consumer_offsets is
        created again at once (Kafka re-creates it on the next FindCoordinator), empty, before
        any commit can find it missing."""
        async with self._topic_lock:
            info = self.logs.topic(name)
            doomed = await trio.to_thread.run_sync(self.logs.write_topic_deletion, info)
            for partition in self.partitions.drop_topic(name):
                await partition.close()
            self.logs.forget_topic(name)
            self._doomed_send.send_nowait(doomed)
            log.info("deleted topic %s", name)
            if name == TXN_STATE_TOPIC:
                log.warning("the internal topic %s was deleted: every transaction's state is gone", name)
                for partition_index in range(info.partitions):
                    self.txns.unload(partition_index)  # created again on the next transactional request
            if name == OFFSETS_TOPIC:
                log.warning("the internal topic %s was deleted: every group's committed offsets are gone", name)
                self.groups.offsets = type(self.groups.offsets)()
                await self._create_topic_locked(OFFSETS_TOPIC, info.partitions,
                                                compacted_topic_configs(self.config.offsets_topic_segment_bytes))
                return
        self.groups.delete_topic_offsets(name)

    async def _remove_deleted_dirs(self) -> None:
        """Background: remove renamed *-delete directories off the event loop."""
        async for paths in self._doomed_recv:
            await trio.to_thread.run_sync(remove_dirs, paths)

    def partition(self, topic: str, index: int) -> Partition | None:
        return self.partitions.get(topic, index)

    def live_brokers(self) -> list[BrokerInfo]:
        """What Metadata lists: every registered broker in a cluster, else this one."""
        if self.cluster is not None:
            return self.cluster.live_brokers()
        host, port = self.advertised
        return [BrokerInfo(self.node_id, host, port)]

    @property
    def controller_id(self) -> int:
        return self.cluster.controller_id if self.cluster is not None else self.node_id

    # ------------------------------------------------------------------ requests

    @staticmethod
    def serves(api_key: int, api_version: int) -> bool:
        handler = HANDLERS.get(api_key)
        return handler is not None and handler.min_version <= api_version <= handler.max_version

    async def dispatch(self, request: Request, conn: ConnectionInfo) -> Msg | None:
        h = request.header
        handler = HANDLERS.get(h.api_key)
        if handler is None or not handler.min_version <= h.api_version <= handler.max_version:
            name = API_NAMES.get(h.api_key, str(h.api_key))
            raise UnsupportedApiError(f"{name} v{h.api_version} is not served by this broker", h)
        ctx = RequestContext(h.api_key, h.api_version, h.correlation_id, h.client_id, conn.peer, conn.connection_id,
                             request.size)
        return await handler.fn(self, ctx, request.body)

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; reports the bound (host, port) once listening."""
        host, port = self.config.listen_host_port
        try:
            async with trio.open_nursery() as nursery:
                self.bound = await nursery.start(partial(serve, observer=self.observer, served=self.serves), self.dispatch, host, port,
                                                 server_limits(self.config))
                self.advertised = _advertised(self.config, self.bound)
                self.partitions.attach(nursery)
                for part in (self.group_placement, self.txn_placement, self.txn_peers):
                    if part is not None:
                        part.attach(nursery)
                if self.cluster is not None:
                    await nursery.start(self.cluster.run)
                nursery.start_soon(self._load_coordinators)
                nursery.start_soon(self._housekeeping)
                nursery.start_soon(self._remove_deleted_dirs)
                task_status.started(self.bound)
        finally:
            self.partitions.attach(None)
            for part in (self.group_placement, self.txn_placement, self.txn_peers):
                if part is not None:
                    part.attach(None)
            self.close()

    async def _housekeeping(self) -> None:
        """Group timers every 100 ms; time-based flush (log.flush.interval.ms) every second;
        log retention and committed-offset expiry on log.retention.check.interval.ms; idle producer
        state on producer.id.expiration.check.interval.ms; timed-out transactions and idle transactional
        ids on transaction.abort.timed.out.transaction.cleanup.interval.ms."""
        interval_s = self.config.log_retention_check_interval_ms / 1000
        producer_check_s = self.config.producer_id_expiration_check_interval_ms / 1000
        txn_check_s = self.config.transaction_abort_timed_out_transaction_cleanup_interval_ms / 1000
        next_txn_check = trio.current_time() + txn_check_s
        next_flush = trio.current_time() + 1
        next_retention = trio.current_time() + interval_s
        next_producer_check = trio.current_time() + producer_check_s
        while True:
            await trio.sleep(GROUP_TICK_S)
            self.groups.tick()
            self.consumer_groups.tick()
            now = trio.current_time()
            if now >= next_flush:
                await self.partitions.flush_due()
                next_flush = now + 1
            if now >= next_retention:
                deleted = await self.partitions.run_retention()
                if deleted:
                    log.info("retention deleted %d segment(s)", deleted)
                self.groups.expire_offsets(now_ms())
                next_retention = now + interval_s
            if now >= next_txn_check:
                await self.txns.tick()
                next_txn_check = now + txn_check_s
            if now >= next_producer_check:
                expired = self.partitions.expire_producers(now_ms(), self.config.producer_id_expiration_ms)
                if expired:
                    log.info("forgot %d idle producer(s) (producer.id.expiration.ms)", expired)
                next_producer_check = now + producer_check_s

    def close(self) -> None:
        """Flush and close every segment (clean shutdown); once, however many callers ask."""
        if self._closed:
            return
        self._closed = True
        self.partitions.snapshot_producers()
        self.logs.close()
        log.info("closed logs in %s", self.data_dir)


def server_limits(config: BrokerConfig) -> ServerLimits:
    """The server layer's settings from the broker config."""
    return ServerLimits(
        max_request_bytes=config.socket_request_max_bytes,
        connections_max_idle_ms=config.connections_max_idle_ms,
        max_connections=config.max_connections,
        max_connections_per_ip=config.max_connections_per_ip,
        max_connections_per_ip_overrides=parse_overrides(config.max_connections_per_ip_overrides),
        queued_max_request_bytes=config.queued_max_request_bytes,
    )


class Coordinator(Protocol):
    """What loading needs of a coordinator (groups, transactions)."""

    partitions: int

    def replay(self, partition: int, batches: Iterable[bytes]) -> int: ...

    def finish_load(self, partition: int) -> None: ...


def _read_chunk(plog: PartitionLog, start: int, budget: int = 4 << 20) -> tuple[list[bytes], int]:
    """Stored batches from `start`, about `budget` bytes of them, and the offset after them."""
    out: list[bytes] = []
    size = 0
    for header, data in plog.iter_batches(start):
        out.append(data)
        size += len(data)
        start = header.last_offset + 1
        if size >= budget:
            break
    return out, start


def compacted_topic_configs(segment_bytes: int) -> dict[str, str]:
    """An internal topic as Kafka creates it: compacted, with offsets.topic.segment.bytes-sized
    segments (so the cleaner has closed segments to work on); Kafka 4's internal.segment.bytes
    carries sizes below segment.bytes' 1 MiB minimum."""
    key = "segment.bytes" if segment_bytes >= 1 << 20 else "internal.segment.bytes"
    return {"cleanup.policy": "compact", key: str(segment_bytes)}


def _topic(info: TopicInfo) -> Topic:
    return Topic(info.name, info.topic_id, info.partitions, dict(info.configs), info.name in INTERNAL_TOPICS)




def _advertised(config: BrokerConfig, bound: tuple[str, int]) -> tuple[str, int]:
    if config.advertised_listeners:
        return parse_listener(config.advertised_listeners)
    host = bound[0]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return host, bound[1]


def _read_properties(path: Path) -> dict[str, str]:
    return parse_properties(path.read_text(), str(path)) if path.exists() else {}
