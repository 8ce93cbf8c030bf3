"""This broker as a member of a ZooKeeper-coordinated cluster (only with ``zookeeper.connect``).

Brokers learn their roles by watching ZooKeeper, not by Kafka's LeaderAndIsr/UpdateMetadata
RPCs: ZooKeeper already holds every fact (live brokers, assignments, partition states), its
watches say when one changed, and each broker acting on what it reads there means one source of
truth, no second protocol to keep in step with it, and no controller-to-broker channel to fail.
The one loop here, on every change (and every ``SYNC_INTERVAL_S`` regardless):

1. reads the whole cluster state (cluster/zk.py, watches re-armed);
2. keeps this broker registered (``/brokers/ids/<id>``, again after a session expiry);
3. contends for, or acts as, the controller (cluster/controller.py: its writes are conditional);
4. creates locally every topic of the cluster (same topic id) and applies each partition's
   state: lead it, follow its leader (cluster/replica_fetcher.py), or neither.

A second loop, the ISR check, runs every replica.lag.time.max.ms / 2 (or at once when a follower
catches up): on partitions this broker leads it drops lagging followers from the ISR or takes
caught-up ones back, by a conditional write of the state znode (a stale leader's write fails).
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any, Callable, Mapping

import trio
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from ..log.errors import InvalidConfigError, InvalidPartitionsError, KafkaStorageError, StartupError, TopicExistsError
from ..log.manager import new_topic_id
from ..log.segment import now_ms
from ..protocol.errors import ErrorCode
from .assignment import InvalidReplicaAssignmentError, assign_replicas
from .controller import StateWrite, finished_deletions, plan
from .elections import Election, TopicPartition, elect, rebalance
from .model import NO_LEADER, BrokerInfo, ClusterSnapshot, PartitionState, TopicAssignment
from .partition import Partition
from .partition_manager import LeaderAndIsr
from .replica_fetcher import FetcherManager
from .roles import become_follower, become_leader, update_isr
from .zk import BadVersionError, NodeExistsError, ZkClient

if TYPE_CHECKING:
    from ..broker import Broker

log = logging.getLogger("pykbroker.cluster")

SYNC_INTERVAL_S = 2.0
ZK_RETRY_S = 0.5
STOP_TIMEOUT_S = 5
ZK_ERRORS = (KazooException, KazooTimeoutError, ConnectionError)
UNCLEAN_KEY = "unclean.leader.election.enable"


class ClusterNode:
    def __init__(self, broker: "Broker") -> None:
        config = broker.config
        self.broker = broker
        self.node_id = broker.node_id
        self.rack = config.broker_rack or None
        self.zk = ZkClient(config.zookeeper_connect, config.zookeeper_session_timeout_ms,
                           config.zookeeper_connection_timeout_ms)
        self.lag_max_ms: int = config.replica_lag_time_max_ms
        self.hw_checkpoint_interval_ms: int = config.replica_high_watermark_checkpoint_interval_ms
        self.snapshot = ClusterSnapshot()
        self.controller_epoch: int | None = None
        self.fetchers = FetcherManager(self.node_id, config.replica_fetch_wait_max_ms, config.replica_fetch_max_bytes)
        self._registered_session: int | None = None
        self._isr_check = trio.Event()
        #: Set (and replaced) after every applied snapshot: CreateTopics waits on it.
        self.applied = trio.Event()
        self._id_conflicts: set[str] = set()
        #: Per topic, the ZooKeeper config overrides last applied here (so each change applies once).
        self._applied_configs: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, register and apply the cluster state once, then report started and keep going."""
        try:
            await self.zk.start()
        except ZK_ERRORS as e:
            raise StartupError(f"cannot connect to ZooKeeper at {self.broker.config.zookeeper_connect}: {e!r}") from e
        try:
            try:
                cluster_id = await self.zk.cluster_id(self.broker.cluster_id)
            except ValueError as e:
                raise StartupError(f"{e}; refusing to start (repair the znode)") from e
            await self.broker.join_cluster_id(cluster_id)
            async with trio.open_nursery() as nursery:
                self.fetchers.attach(nursery)
                await self._sync_once()
                nursery.start_soon(self._sync_loop)
                nursery.start_soon(self._isr_loop)
                nursery.start_soon(self._hw_checkpoint_loop)
                nursery.start_soon(self._rebalance_loop)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT_S):
                await self.broker.partitions.checkpoint_high_watermarks()
                await self.zk.stop()

    @property
    def info(self) -> BrokerInfo:
        host, port = self.broker.advertised
        return BrokerInfo(self.node_id, host, port, self.rack)

    async def _sync_loop(self) -> None:
        while True:
            changed = self.zk.changed
            with trio.move_on_after(SYNC_INTERVAL_S):
                await changed.wait()
            await self._sync_once()

    async def _sync_once(self) -> None:
        """Read, register, control, apply; ZooKeeper errors are logged and retried."""
        while True:
            self.zk.take_changed()
            try:
                snap = await self.zk.read_snapshot()
                self.snapshot = snap
                await self._register(snap)
                if await self._control(snap):
                    continue  # we wrote: read what we wrote (and what others did meanwhile)
                await self._apply(snap)
                return
            except ZK_ERRORS as e:
                log.warning("ZooKeeper: %r; retrying", e)
                await trio.sleep(ZK_RETRY_S)

    async def _register(self, snap: ClusterSnapshot) -> None:
        session = self.zk.session_id
        if self._registered_session == session and self.node_id in snap.brokers:
            return
        if await self.zk.register_broker(self.info):
            self._registered_session = session
            log.info("registered as broker %d in ZooKeeper (session 0x%x)", self.node_id, session or 0)
            self.zk.changed.set()
        else:
            log.warning("broker id %d is registered by another session (an earlier run of this broker?); "
                        "retrying until that session expires", self.node_id)

    async def _control(self, snap: ClusterSnapshot) -> bool:
        """Win or keep the controller role and write what the controller must; True if anything was written."""
        if snap.controller_id == NO_LEADER and self._registered_session is not None:
            epoch = await self.zk.try_become_controller(self.node_id, snap.controller_epoch,
                                                        snap.controller_epoch_version)
            if epoch is not None:
                self.controller_epoch = epoch
                log.info("became the controller (epoch %d)", epoch)
            return True
        if snap.controller_id != self.node_id or snap.controller_epoch != self.controller_epoch:
            if self.controller_epoch is not None:
                log.info("no longer the controller")
            self.controller_epoch = None
            return False
        wrote = await self._write_states(plan(snap, self.controller_epoch, lambda t: self._unclean(snap, t))) > 0
        for name, exists in finished_deletions(snap):
            await self.zk.finish_deletion(name, exists)
            log.info("controller: topic %s deleted", name)
            wrote = True
        return wrote

    def _unclean(self, snap: ClusterSnapshot, topic: str) -> bool:
        """The topic's unclean.leader.election.enable, else the broker's (Kafka's default: false)."""
        value = snap.configs.get(topic, {}).get(UNCLEAN_KEY) or self.broker.config.log_config.other.get(UNCLEAN_KEY)
        return str(value).strip().lower() == "true"

    async def _write_states(self, writes: list[StateWrite]) -> int:
        """The controller's writes, each conditional (or a create); returns how many took."""
        written = 0
        for w in writes:
            if w.create:
                ok = await self.zk.create_state(w.topic, w.partition, w.state)
            else:
                ok = await self.zk.update_state(w.topic, w.partition, w.state) is not None
            if ok:
                written += 1
                log.info("controller: %s-%d leader %d epoch %d ISR %s", w.topic, w.partition, w.state.leader,
                         w.state.leader_epoch, list(w.state.isr))
        return written

    @property
    def is_controller(self) -> bool:
        return self.controller_epoch is not None and self.snapshot.controller_id == self.node_id

    # ------------------------------------------------------------------ preferred leaders

    async def _rebalance_loop(self) -> None:
        """auto.leader.rebalance.enable: every leader.imbalance.check.interval.seconds the controller
        moves leaderships back to preferred replicas where a broker's imbalance is over the threshold."""
        config = self.broker.config
        if not config.auto_leader_rebalance_enable:
            return
        while True:
            await trio.sleep(config.leader_imbalance_check_interval_seconds)
            if not self.is_controller:
                continue
            assert self.controller_epoch is not None
            snap = self.snapshot
            moves = rebalance(snap, self.controller_epoch, config.leader_imbalance_per_broker_percentage,
                              skip=lambda topic: topic in snap.deleting)
            if not moves:
                continue
            log.info("controller: leader imbalance, preferred-leader election for %d partition(s)", len(moves))
            try:
                if await self._write_states([StateWrite(t, p, s, False) for (t, p), s in sorted(moves.items())]):
                    self.zk.changed.set()
            except ZK_ERRORS as e:
                log.warning("preferred-leader election not written: %r", e)

    async def elect_leaders(self, partitions: list[TopicPartition] | None, election_type: int,
                            timeout_s: float) -> dict[TopicPartition, Election]:
        """ElectLeaders, answered by the controller (clients send it there, as to Kafka's; another
        broker answers NOT_CONTROLLER like Kafka's ZooKeeper-mode controller).

        The controller writes the new states itself, conditionally on the versions it decided from,
        rather than queueing the request in /admin/preferred_replica_election: its decisions are
        already made from the snapshot and applied by conditional writes (cluster/controller.py), so
        this is the same path with nothing new for brokers to watch, and the answer says what was
        actually written. A write that lost to a concurrent change is decided again on a fresh
        snapshot; then, like Kafka's DelayedElectLeader, we wait (up to ``timeout_s``) until this
        broker sees each new leader (REQUEST_TIMED_OUT for those it does not)."""
        if not self.is_controller:
            return {tp: Election(None, ErrorCode.NOT_CONTROLLER) for tp in partitions or ()}
        if partitions is None:
            partitions = sorted(self.snapshot.states)
        results: dict[TopicPartition, Election] = {}
        pending = list(partitions)
        with trio.move_on_after(timeout_s):
            try:
                while pending:
                    assert self.controller_epoch is not None
                    lost = []
                    for tp, e in elect(self.snapshot, pending, election_type, self.controller_epoch).items():
                        if e.state is not None and await self.zk.update_state(tp[0], tp[1], e.state) is None:
                            lost.append(tp)
                        else:
                            results[tp] = e
                    pending = lost
                    self.zk.changed.set()
                    if pending:
                        await self.applied.wait()  # decide those again on a fresh snapshot
                while not all(self._sees(tp, e) for tp, e in results.items()):
                    await self.applied.wait()
            except ZK_ERRORS as e:
                log.warning("ElectLeaders: %r", e)
        timed_out = Election(None, ErrorCode.REQUEST_TIMED_OUT, "Leader election timed out")
        return {tp: results[tp] if tp in results and self._sees(tp, results[tp]) else timed_out
                for tp in partitions}

    def _sees(self, tp: TopicPartition, e: Election) -> bool:
        current = self.snapshot.states.get(tp)
        return e.state is None or (current is not None and current.leader == e.state.leader
                                   and current.leader_epoch >= e.state.leader_epoch)

    # ------------------------------------------------------------------ applying the state

    async def _apply(self, snap: ClusterSnapshot) -> None:
        for name, assignment in snap.topics.items():
            if name in snap.deleting:
                await self._delete_local_topic(assignment, snap.deleting[name])
            else:
                await self._ensure_local_topic(assignment, snap.configs.get(name, {}))
        for key, state in snap.states.items():
            if key[0] in snap.deleting:
                continue
            assignment = snap.topics.get(key[0])
            replicas = assignment.replicas.get(key[1], ()) if assignment else ()
            if self.node_id in replicas:
                partition = self.broker.partitions.get(*key)
                if partition is not None and partition.replication is not None:
                    await self._apply_partition(partition, state, replicas, snap)
        applied, self.applied = self.applied, trio.Event()
        applied.set()

    async def _ensure_local_topic(self, assignment: TopicAssignment, configs: Mapping[str, str]) -> None:
        local = self.broker.logs.topics.get(assignment.name)
        if local is not None:
            if local.topic_id != assignment.topic_id and assignment.name not in self._id_conflicts:
                self._id_conflicts.add(assignment.name)
                log.error("topic %s has id %s here but %s in ZooKeeper: its local data is left as it is and "
                          "not served (delete or move the local directories to join)", assignment.name,
                          local.topic_id, assignment.topic_id)
            elif local.topic_id == assignment.topic_id:
                await self._apply_topic_changes(assignment, local.partitions, configs)
            return
        try:
            await self.broker.install_cluster_topic(assignment.name, assignment.topic_id,
                                                    len(assignment.replicas), configs)
            self._applied_configs[assignment.name] = dict(configs)
        except TopicExistsError:
            pass  # created by a concurrent pass

    async def _apply_topic_changes(self, assignment: TopicAssignment, local_partitions: int,
                                   configs: Mapping[str, str]) -> None:
        """CreatePartitions and config changes seen in ZooKeeper, made here too."""
        name = assignment.name
        try:
            if len(assignment.replicas) > local_partitions:
                await self.broker.create_partitions(name, len(assignment.replicas))
            if self._applied_configs.get(name) != configs:
                await self.broker.alter_topic_configs(name, lambda overrides, effective: dict(configs))
                self._applied_configs[name] = dict(configs)
        except (InvalidConfigError, InvalidPartitionsError, KafkaStorageError) as e:
            log.error("topic %s: the change in ZooKeeper (/brokers/topics/%s, /config/topics/%s) cannot be "
                      "applied here: %s", name, name, name, e)

    async def _delete_local_topic(self, assignment: TopicAssignment, acked: set[int]) -> None:
        """A topic queued for deletion: this replica's data goes (off the loop, broker.delete_topic),
        then it says so under the marker; local data with another topic id is not the cluster's and stays."""
        name = assignment.name
        if self.node_id in acked or all(self.node_id not in rs for rs in assignment.replicas.values()):
            return
        local = self.broker.logs.topics.get(name)
        if local is not None and local.topic_id == assignment.topic_id:
            for index in range(local.partitions):
                self.fetchers.stop_following((name, index))
            try:
                await self.broker.delete_topic(name)
            except KafkaStorageError as e:
                log.error("topic %s queued for deletion: its data here could not be deleted: %s", name, e)
                return
        self._applied_configs.pop(name, None)
        await self.zk.ack_deletion(name, self.node_id)

    async def _apply_partition(self, p: Partition, state: PartitionState, replicas: tuple[int, ...],
                               snap: ClusterSnapshot) -> None:
        r = p.replication
        assert r is not None
        key = (p.topic, p.index)
        if state.leader == self.node_id:
            if not r.is_leader or p.leader_epoch != state.leader_epoch:
                self.fetchers.stop_following(key)
                await become_leader(p, state, replicas)
                self._coordinator_role(p)
            elif state.zk_version != r.zk_version:
                update_isr(p, state)
            return
        leader = snap.brokers.get(state.leader)
        following = self.fetchers.following(key)
        if r.is_leader or p.leader_epoch != state.leader_epoch or p.leader_id != state.leader:
            become_follower(p, state, replicas)
            self._coordinator_role(p)
            following = None
        elif state.zk_version != r.zk_version:
            p.isr, r.zk_version = list(state.isr), state.zk_version
        if leader is None:
            self.fetchers.stop_following(key)  # no leader (or not registered yet): wait for ZooKeeper
        elif following != (leader.broker_id, state.leader_epoch):
            self.fetchers.follow(p, leader, state.leader_epoch)

    async def _hw_checkpoint_loop(self) -> None:
        """replica.high.watermark.checkpoint.interval.ms: a restarted replica starts from these."""
        while True:
            await trio.sleep(self.hw_checkpoint_interval_ms / 1000)
            await self.broker.partitions.checkpoint_high_watermarks()

    def _coordinator_role(self, p: Partition) -> None:
        """The coordinators load or unload the partition's state (cluster/coordinator_placement.py)."""
        for placement in (self.broker.group_placement, self.broker.txn_placement):
            if placement is not None and p.topic == placement.topic:
                placement.role_changed(p)

    # ------------------------------------------------------------------ ISR

    def isr_check_soon(self) -> None:
        self._isr_check.set()

    async def _isr_loop(self) -> None:
        interval_s = max(self.lag_max_ms / 2000, 0.05)
        while True:
            with trio.move_on_after(interval_s):
                await self._isr_check.wait()
            self._isr_check = trio.Event()
            for p in list(self.broker.partitions):
                if p.replication is not None and p.replication.is_leader:
                    try:
                        await self._maybe_change_isr(p)
                    except ZK_ERRORS as e:
                        log.warning("%s-%d: ISR change not written: %r", p.topic, p.index, e)

    async def _maybe_change_isr(self, p: Partition) -> None:
        r = p.replication
        assert r is not None
        isr = tuple(p.isr)
        now = now_ms()
        lagging = set(r.lagging(isr, now, self.lag_max_ms))
        joining = [f for f in sorted(r.followers)
                   if f in self.snapshot.brokers and r.isr_candidate(f, isr, now - self.lag_max_ms)]
        if not lagging and not joining:
            return
        new_isr = tuple(i for i in isr if i not in lagging) + tuple(joining)
        state = PartitionState(self.node_id, p.leader_epoch, new_isr, self.snapshot.controller_epoch, r.zk_version)
        version = await self.zk.update_state(p.topic, p.index, state)
        if version is None:
            log.info("%s-%d: ISR change to %s lost to a newer state; re-reading", p.topic, p.index, list(new_isr))
            self.zk.changed.set()
            return
        if r.is_leader and p.leader_epoch == state.leader_epoch:
            update_isr(p, PartitionState(state.leader, state.leader_epoch, new_isr, state.controller_epoch, version))
        log.info("%s-%d: ISR %s -> %s", p.topic, p.index, list(isr), list(new_isr))

    # ------------------------------------------------------------------ controlled shutdown

    async def controlled_shutdown(self, timeout_s: float = 10) -> int:
        """controlled.shutdown.enable: before exiting, every partition this broker leads goes to the
        first other live ISR member, at the next leader epoch and without this broker in the ISR, so
        that clients move at once and no acks=all write is answered by a leader about to vanish.

        Kafka asks the controller (ControlledShutdown RPC) to do this; here the leader writes the
        state itself with the same conditional write as its ISR changes (a concurrent controller or
        leader decision wins and is then followed). A partition without another live ISR member
        stays led here until exit (then offline, as in Kafka). Returns the leaderships moved."""
        if not self.broker.config.controlled_shutdown_enable:
            return 0
        if not self.zk.connected:
            log.warning("controlled shutdown skipped: ZooKeeper is not reachable (the controller moves "
                        "leaderships once this broker's session expires)")
            return 0
        moved = 0
        with trio.move_on_after(timeout_s):
            for p in list(self.broker.partitions):
                r = p.replication
                if r is None or not r.is_leader:
                    continue
                others = [i for i in p.replicas if i != self.node_id and i in p.isr and i in self.snapshot.brokers]
                if not others:
                    continue
                state = PartitionState(others[0], p.leader_epoch + 1, tuple(i for i in p.isr if i != self.node_id),
                                       self.snapshot.controller_epoch, r.zk_version)
                try:
                    version = await self.zk.update_state(p.topic, p.index, state)
                except ZK_ERRORS as e:
                    log.warning("controlled shutdown: %s-%d not moved: %r", p.topic, p.index, e)
                    continue
                if version is not None:
                    become_follower(p, PartitionState(state.leader, state.leader_epoch, state.isr,
                                                      state.controller_epoch, version), tuple(p.replicas))
                    self._coordinator_role(p)
                    moved += 1
        log.info("controlled shutdown: handed %d leadership(s) to other in-sync replicas", moved)
        return moved

    # ------------------------------------------------------------------ what handlers ask

    def leader_and_isr(self, topic: str, index: int) -> LeaderAndIsr | None:
        assignment = self.snapshot.topics.get(topic)
        if assignment is None:
            return None
        replicas = list(assignment.replicas.get(index, ()))
        state = self.snapshot.states.get((topic, index))
        offline = [r for r in replicas if r not in self.snapshot.brokers]
        if state is None:
            return LeaderAndIsr(NO_LEADER, 0, replicas, [], offline)
        # A leader this broker does not see alive (its registration not read yet, or its session just
        # ended) is no leader for clients, as in Kafka's MetadataCache: they would look for a broker
        # missing from the same response's broker list.
        leader = state.leader if state.leader in self.snapshot.brokers else NO_LEADER
        return LeaderAndIsr(leader, state.leader_epoch, replicas, list(state.isr), offline)

    def racks(self) -> dict[int, str | None]:
        return {b.broker_id: b.rack for b in self.snapshot.brokers.values()}

    def live_brokers(self) -> list[BrokerInfo]:
        brokers = dict(self.snapshot.brokers)
        brokers.setdefault(self.node_id, self.info)  # serving, if not registered yet
        return [brokers[i] for i in sorted(brokers)]

    @property
    def controller_id(self) -> int:
        return self.snapshot.controller_id

    async def create_topic(self, name: str, partitions: int, replication_factor: int,
                           assignments: Mapping[int, list[int]] | None, configs: Mapping[str, str | None],
                           timeout_s: float) -> uuid.UUID:
        """CreateTopics in a cluster (Kafka's AdminZkClient): the assignment and configs go to
        ZooKeeper, the controller creates the partition states; we wait (up to ``timeout_s``) until
        this broker has the topic and every partition has a leader, as Kafka's CreateTopics does."""
        racks = {b.broker_id: b.rack for b in self.snapshot.brokers.values()}
        if assignments:
            self._check_brokers(assignments.values())
            replicas = {p: tuple(rs) for p, rs in assignments.items()}
        else:
            replicas = assign_replicas(partitions, replication_factor, racks)
        topic_id = new_topic_id()
        written = {k: v for k, v in configs.items() if v is not None}
        try:
            await self.zk.create_topic(TopicAssignment(name, topic_id, replicas), written)
        except NodeExistsError:
            raise TopicExistsError(f"Topic '{name}' already exists.") from None
        self.zk.changed.set()
        with trio.move_on_after(timeout_s):
            while not self._topic_ready(name, len(replicas)):
                await self.applied.wait()
        return topic_id

    def _topic_ready(self, name: str, partitions: int) -> bool:
        if name not in self.broker.logs.topics:
            return False
        states = self.snapshot.states
        return all((name, p) in states and states[(name, p)].leader != NO_LEADER for p in range(partitions))

    # ------------------------------------------------------------------ topic changes (as Kafka's AdminZkClient)

    def has_topic(self, name: str) -> bool:
        """A topic of the cluster (in ZooKeeper), as opposed to one kept on this broker only."""
        return name in self.snapshot.topics

    async def _until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Wait (re-reading ZooKeeper at once) until ``done()`` holds after an applied snapshot."""
        self.zk.changed.set()
        with trio.move_on_after(timeout_s):
            while not done():
                await self.applied.wait()
        return done()

    async def delete_topic(self, name: str, timeout_s: float) -> bool:
        """DeleteTopics: queue the topic in /admin/delete_topics; the controller and every replica do
        the rest (see ``_delete_local_topic``, controller.finished_deletions). True once this broker
        sees it gone (Kafka answers REQUEST_TIMED_OUT otherwise; the deletion still completes)."""
        await self.zk.mark_for_deletion(name)
        return await self._until(lambda: name not in self.snapshot.topics, timeout_s)

    async def create_partitions(self, name: str, total: int, assignments: list[list[int]] | None,
                                validate_only: bool, timeout_s: float) -> None:
        """CreatePartitions: the new partitions' replicas added to /brokers/topics/<t> (conditionally);
        the controller elects their leaders, every replica creates them. Kafka's errors as exceptions."""
        assignment = self.snapshot.topics[name]
        current = len(assignment.replicas)
        if total == current:
            raise InvalidPartitionsError(f"Topic already has {total} partition(s).")
        if total < current:
            raise InvalidPartitionsError(f"The topic {name} currently has {current} partition(s); {total} "
                                         f"would not be an increase.")
        if name in self.snapshot.deleting:
            raise InvalidPartitionsError(f"The topic {name} is queued for deletion.")
        factor = len(assignment.replicas[0])
        if assignments is not None:
            if len(assignments) != total - current:
                raise InvalidReplicaAssignmentError(
                    f"Attempted to add {total - current} additional partition(s), but only {len(assignments)} "
                    f"assignment(s) were specified.")
            self._check_brokers(assignments)
            if any(len(a) != factor for a in assignments):
                raise InvalidReplicaAssignmentError(
                    f"The manual partition assignment includes a partition with {min(map(len, assignments))} "
                    f"replica(s), but this is not consistent with previous partitions, which have {factor} replica(s).")
            new = {current + i: tuple(a) for i, a in enumerate(assignments)}
        else:
            racks = {b.broker_id: b.rack for b in self.snapshot.brokers.values()}
            new = assign_replicas(total - current, factor, racks, first_partition=current)
        if validate_only:
            return
        try:
            await self.zk.add_partitions(name, new, current)
        except BadVersionError:
            raise InvalidPartitionsError(f"The partitions of {name} changed meanwhile; try again.") from None
        await self._until(lambda: self._topic_ready(name, total), timeout_s)

    def _check_brokers(self, assignments: Any) -> None:
        lists = list(assignments)
        unknown = {r for rs in lists for r in rs} - set(self.snapshot.brokers)
        if unknown or any(len(set(rs)) != len(rs) for rs in lists):
            raise InvalidReplicaAssignmentError(
                f"Unknown broker(s) in replica assignment: {sorted(unknown)}" if unknown
                else "Duplicate brokers in a partition's replica assignment")

    async def alter_topic_configs(self, name: str,
                                  change: Callable[[dict[str, str | None], dict[str, str]], Mapping[str, str | None]],
                                  validate_only: bool = False) -> None:
        """(Incremental)AlterConfigs: ``change`` applied to the overrides in /config/topics/<t> and
        validated as a local change is, written conditionally (with Kafka's change notification);
        every broker applies it on seeing it. Returns once applied here (or after 10 s)."""
        logs = self.broker.logs

        def validated(current: dict[str, str]) -> dict[str, str]:
            effective = logs.prepare_topic_configs(name, current).config.to_kafka_configs()
            info = logs.prepare_topic_configs(name, change(dict(current), effective))
            return {k: v for k, v in info.configs.items() if v is not None}

        if validate_only:
            validated(self.snapshot.configs.get(name, {}))
            return
        written: list[dict[str, str]] = []
        await self.zk.change_topic_config(name, lambda current: written.append(validated(current)) or written[-1])
        await self._until(lambda: self._applied_configs.get(name) == written[-1], 10)
