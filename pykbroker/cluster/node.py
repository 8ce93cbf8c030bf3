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
from typing import TYPE_CHECKING, Mapping

import trio
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from ..log.errors import StartupError, TopicExistsError
from ..log.manager import new_topic_id
from ..log.segment import now_ms
from .assignment import InvalidReplicaAssignmentError, assign_replicas
from .controller import plan
from .model import NO_LEADER, BrokerInfo, ClusterSnapshot, PartitionState, TopicAssignment
from .partition import Partition
from .partition_manager import LeaderAndIsr
from .replica_fetcher import FetcherManager
from .roles import become_follower, become_leader, update_isr
from .zk import NodeExistsError, ZkClient

if TYPE_CHECKING:
    from ..broker import Broker

log = logging.getLogger("pykbroker.cluster")

SYNC_INTERVAL_S = 2.0
ZK_RETRY_S = 0.5
STOP_TIMEOUT_S = 5
ZK_ERRORS = (KazooException, KazooTimeoutError, ConnectionError)


class ClusterNode:
    def __init__(self, broker: "Broker") -> None:
        config = broker.config
        self.broker = broker
        self.node_id = broker.node_id
        self.rack = config.broker_rack or None
        self.zk = ZkClient(config.zookeeper_connect, config.zookeeper_session_timeout_ms,
                           config.zookeeper_connection_timeout_ms)
        self.lag_max_ms: int = config.replica_lag_time_max_ms
        self.snapshot = ClusterSnapshot()
        self.controller_epoch: int | None = None
        self.fetchers = FetcherManager(self.node_id, config.replica_fetch_wait_max_ms, config.replica_fetch_max_bytes)
        self._registered_session: int | None = None
        self._isr_check = trio.Event()
        #: Set (and replaced) after every applied snapshot: CreateTopics waits on it.
        self.applied = trio.Event()
        self._id_conflicts: set[str] = set()

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, register and apply the cluster state once, then report started and keep going."""
        try:
            await self.zk.start()
        except ZK_ERRORS as e:
            raise StartupError(f"cannot connect to ZooKeeper at {self.broker.config.zookeeper_connect}: {e!r}") from e
        try:
            async with trio.open_nursery() as nursery:
                self.fetchers.attach(nursery)
                await self._sync_once()
                nursery.start_soon(self._sync_loop)
                nursery.start_soon(self._isr_loop)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT_S):
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
        wrote = False
        for w in plan(snap, self.controller_epoch):
            if w.create:
                ok = await self.zk.create_state(w.topic, w.partition, w.state)
            else:
                ok = await self.zk.update_state(w.topic, w.partition, w.state) is not None
            wrote = wrote or ok
            if ok:
                log.info("controller: %s-%d leader %d epoch %d ISR %s", w.topic, w.partition, w.state.leader,
                         w.state.leader_epoch, list(w.state.isr))
        return wrote

    # ------------------------------------------------------------------ applying the state

    async def _apply(self, snap: ClusterSnapshot) -> None:
        for name, assignment in snap.topics.items():
            await self._ensure_local_topic(assignment, snap.configs.get(name, {}))
        for key, state in snap.states.items():
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
            return
        try:
            await self.broker.install_cluster_topic(assignment.name, assignment.topic_id,
                                                    len(assignment.replicas), configs)
        except TopicExistsError:
            pass  # created by a concurrent pass

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

    def _coordinator_role(self, p: Partition) -> None:
        """The group coordinator loads or unloads the partition's groups (cluster/group_placement.py)."""
        placement = self.broker.group_placement
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
        lagging = set(r.lagging(isr, now_ms(), self.lag_max_ms))
        joining = [f for f in sorted(r.followers) if r.isr_candidate(f, isr)]
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
        return LeaderAndIsr(state.leader, state.leader_epoch, replicas, list(state.isr), offline)

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
            unknown = {r for rs in assignments.values() for r in rs} - set(racks)
            if unknown or any(len(set(rs)) != len(rs) for rs in assignments.values()):
                raise InvalidReplicaAssignmentError(
                    f"Unknown broker(s) in replica assignment: {sorted(unknown)}" if unknown
                    else "Duplicate brokers in a partition's replica assignment")
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
