"""The broker's ZooKeeper client: kazoo, with every call run in a worker thread (kazoo blocks).

Watches are level-triggered here: a watch (or a session state change) only sets ``changed``, an
event on the trio loop; whoever waits on it reads the whole picture again (``read_snapshot``, which
re-arms every watch) and acts on it. Nothing depends on seeing each individual notification, so a
watch lost with an expired session costs nothing but a re-read.

All paths are under the chroot of ``zookeeper.connect`` (``host:port[,host:port]/chroot``),
created at start if missing (Kafka does the same).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import trio
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from .model import (
    BrokerInfo, ClusterSnapshot, PartitionState, TopicAssignment, cluster_id_json, controller_json, parse_cluster_id,
    parse_controller, parse_producer_id_block_end, parse_topic_config, producer_id_block_json, topic_config_json,
)

log = logging.getLogger("pykbroker.zk")

#: The persistent paths Kafka creates at start (KafkaZkClient.createTopLevelPaths).
TOP_LEVEL = ("/brokers/ids", "/brokers/topics", "/config/topics", "/config/changes", "/admin/delete_topics")

#: kazoo's exceptions the callers handle by name.
__all__ = ["ZkClient", "BadVersionError", "NodeExistsError", "NoNodeError", "split_connect"]


def split_connect(connect: str) -> tuple[str, str]:
    """'h1:2181,h2:2181/pyk' -> ('h1:2181,h2:2181', '/pyk'); no chroot -> ''."""
    hosts, slash, chroot = connect.partition("/")
    return hosts, ("/" + chroot.strip("/")) if slash and chroot.strip("/") else ""


def state_path(topic: str, partition: int) -> str:
    return f"/brokers/topics/{topic}/partitions/{partition}/state"


class ZkClient:
    def __init__(self, connect: str, session_timeout_ms: int, connection_timeout_ms: int) -> None:
        hosts, self.chroot = split_connect(connect)
        self._kazoo = KazooClient(hosts=hosts, timeout=session_timeout_ms / 1000)
        self._connection_timeout_s = connection_timeout_ms / 1000
        self.changed = trio.Event()
        self._token: trio.lowlevel.TrioToken | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Connect (ZooKeeperConnectionTimeout... as kazoo's timeout error) and create the top-level paths."""
        self._token = trio.lowlevel.current_trio_token()
        self._kazoo.add_listener(self._on_state)
        await _off_loop(self._kazoo.start, self._connection_timeout_s)
        for path in TOP_LEVEL:
            await self.run(self._kazoo.ensure_path, self._p(path))

    async def stop(self) -> None:
        await _off_loop(self._stop_now)

    def _stop_now(self) -> None:
        try:
            self._kazoo.stop()
            self._kazoo.close()
        except Exception as e:  # stopping must never fail the broker's shutdown
            log.warning("closing the ZooKeeper session: %s", e)

    @property
    def session_id(self) -> int | None:
        sid = self._kazoo.client_id
        return sid[0] if sid else None

    @property
    def connected(self) -> bool:
        return self._kazoo.state == KazooState.CONNECTED

    def _on_state(self, state: str) -> None:
        log.info("ZooKeeper session %s", state)
        self._notify()

    def _notify(self, *_: Any) -> None:
        """From kazoo's thread: wake the trio side (never blocks; ignored once trio has stopped)."""
        if self._token is None:
            return
        try:
            self._token.run_sync_soon(self._set_changed)
        except trio.RunFinishedError:
            pass

    def _set_changed(self) -> None:
        self.changed.set()

    def take_changed(self) -> trio.Event:
        """A fresh event for the next change (call before re-reading, so no change is missed)."""
        self.changed = trio.Event()
        return self.changed

    def _p(self, path: str) -> str:
        return self.chroot + path

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await _off_loop(lambda: fn(*args, **kwargs))

    # ------------------------------------------------------------------ registration and controller

    async def cluster_id(self, proposed: str) -> str:
        """Kafka's /cluster/id: the first broker of a cluster writes ``proposed``; every broker adopts
        what is there, so all of them report one cluster id."""
        return await _off_loop(self._cluster_id, proposed)

    def _cluster_id(self, proposed: str) -> str:
        path = self._p("/cluster/id")
        try:
            self._kazoo.create(path, cluster_id_json(proposed), makepath=True)
        except NodeExistsError:
            pass
        data, _ = self._kazoo.get(path)
        return parse_cluster_id(data, path)

    async def register_broker(self, info: BrokerInfo) -> bool:
        """/brokers/ids/<id> (ephemeral) for this session; False while another session still holds it
        (the previous incarnation of this broker, killed, until its session expires)."""
        return await _off_loop(self._register, f"/brokers/ids/{info.broker_id}", info.to_json())

    def _register(self, path: str, data: bytes) -> bool:
        try:
            self._kazoo.create(self._p(path), data, ephemeral=True)
            return True
        except NodeExistsError:
            stat = self._kazoo.exists(self._p(path), watch=self._notify)
            return stat is not None and stat.ephemeralOwner == self.session_id

    async def is_registered(self, broker_id: int) -> bool:
        def check() -> bool:
            stat = self._kazoo.exists(self._p(f"/brokers/ids/{broker_id}"))
            return stat is not None and stat.ephemeralOwner == self.session_id
        return await _off_loop(check)

    async def try_become_controller(self, broker_id: int, known_epoch: int, epoch_version: int) -> int | None:
        """Kafka's election: create /controller (ephemeral), then bump /controller_epoch with a
        conditional write. Returns the new controller epoch, or None if another broker won."""
        return await _off_loop(self._elect, broker_id, known_epoch, epoch_version)

    def _elect(self, broker_id: int, known_epoch: int, epoch_version: int) -> int | None:
        try:
            self._kazoo.create(self._p("/controller"), controller_json(broker_id), ephemeral=True)
        except NodeExistsError:
            return None
        epoch = known_epoch + 1
        try:
            if epoch_version < 0:
                self._kazoo.create(self._p("/controller_epoch"), str(epoch).encode())
            else:
                self._kazoo.set(self._p("/controller_epoch"), str(epoch).encode(), version=epoch_version)
        except (NodeExistsError, BadVersionError):
            # Another controller moved the epoch between our read and now: give the role back.
            self._kazoo.delete(self._p("/controller"))
            return None
        return epoch

    # ------------------------------------------------------------------ topics and partition states

    async def create_topic(self, assignment: TopicAssignment, configs: dict[str, str]) -> None:
        """AdminZkClient.createTopic: the config node, then the assignment (NodeExistsError if taken)."""
        def create() -> None:
            tx = self._kazoo.transaction()
            tx.create(self._p(f"/config/topics/{assignment.name}"), topic_config_json(configs))
            tx.create(self._p(f"/brokers/topics/{assignment.name}"), assignment.to_json())
            results = tx.commit()
            for r in results:
                if isinstance(r, Exception):
                    raise NodeExistsError() if isinstance(r, NodeExistsError) else r
        await _off_loop(create)

    async def create_state(self, topic: str, partition: int, state: PartitionState) -> bool:
        """The controller's first state of a new partition; False if one exists already."""
        def create() -> bool:
            try:
                self._kazoo.create(self._p(state_path(topic, partition)), state.to_json(), makepath=True)
                return True
            except NodeExistsError:
                return False
        return await _off_loop(create)

    async def update_state(self, topic: str, partition: int, state: PartitionState) -> int | None:
        """Conditional write of a partition state on ``state.zk_version``: the new version, or None
        when someone else wrote first (the caller re-reads and decides again)."""
        def update() -> int | None:
            try:
                stat = self._kazoo.set(self._p(state_path(topic, partition)), state.to_json(),
                                       version=state.zk_version)
                return stat.version
            except (BadVersionError, NoNodeError):
                return None
        return await _off_loop(update)

    # ------------------------------------------------------------------ topic changes (cluster/topic_admin.py)

    async def add_partitions(self, name: str, new: dict[int, tuple[int, ...]], current: int) -> None:
        """AdminZkClient.addPartitions: the topic node with ``new`` added, conditional on its version
        and on it still having ``current`` partitions (BadVersionError otherwise)."""
        def add() -> None:
            data, stat = self._kazoo.get(self._p(f"/brokers/topics/{name}"))
            assignment = TopicAssignment.from_json(name, data)
            if assignment is None:
                raise ValueError(f"ZooKeeper node /brokers/topics/{name} holds {data[:200]!r}, not a topic assignment")
            if len(assignment.replicas) != current:
                raise BadVersionError()
            merged = TopicAssignment(name, assignment.topic_id, {**assignment.replicas, **new})
            self._kazoo.set(self._p(f"/brokers/topics/{name}"), merged.to_json(), version=stat.version)
        await _off_loop(add)

    async def change_topic_config(self, name: str, change: Callable[[dict[str, str]], dict[str, str]]) -> None:
        """AdminZkClient.changeTopicConfig: /config/topics/<t> rewritten (conditionally, ``change``
        evaluated again if another write came first), then Kafka's change notification
        /config/changes/config_change_<seq> (brokers here watch the config node itself)."""
        def write() -> None:
            path = self._p(f"/config/topics/{name}")
            while True:
                data, stat = self._kazoo.get(path)
                try:
                    self._kazoo.set(path, topic_config_json(change(parse_topic_config(data))), version=stat.version)
                    break
                except BadVersionError:
                    continue
            self._kazoo.create(self._p("/config/changes/config_change_"),
                               json.dumps({"version": 2, "entity_path": f"topics/{name}"}).encode(), sequence=True)
        await _off_loop(write)

    async def mark_for_deletion(self, name: str) -> None:
        """DeleteTopics as AdminZkClient.deleteTopic: /admin/delete_topics/<t>; the controller does the rest."""
        def mark() -> None:
            try:
                self._kazoo.create(self._p(f"/admin/delete_topics/{name}"), b"")
            except NodeExistsError:
                pass  # already queued
        await _off_loop(mark)

    async def ack_deletion(self, name: str, broker_id: int) -> None:
        """A replica's "deleted here" (Kafka's StopReplica(delete=true) response), under the topic's marker."""
        def ack() -> None:
            try:
                self._kazoo.create(self._p(f"/admin/delete_topics/{name}/{broker_id}"), b"")
            except (NodeExistsError, NoNodeError):
                pass  # acknowledged already, or the deletion is complete
        await _off_loop(ack)

    async def finish_deletion(self, name: str, assignment_exists: bool) -> None:
        """The controller, once every replica acknowledged: the topic's nodes, then its marker (a
        controller dying in between leaves a marker without a topic, removed by the next one)."""
        def finish() -> None:
            if assignment_exists:
                self._kazoo.delete(self._p(f"/brokers/topics/{name}"), recursive=True)
                try:
                    self._kazoo.delete(self._p(f"/config/topics/{name}"))
                except NoNodeError:
                    pass
            self._kazoo.delete(self._p(f"/admin/delete_topics/{name}"), recursive=True)
        await _off_loop(finish)

    # ------------------------------------------------------------------ producer ids

    async def allocate_producer_ids(self, broker_id: int, block_size: int) -> int:
        """Kafka's ZkProducerIdManager: the next block from /latest_producer_id_block, taken by a
        conditional write (retried when another broker took one meanwhile). Returns its first id."""
        return await _off_loop(self._allocate_producer_ids, broker_id, block_size)

    def _allocate_producer_ids(self, broker_id: int, block_size: int) -> int:
        path = self._p("/latest_producer_id_block")
        while True:
            try:
                data, stat = self._kazoo.get(path)
            except NoNodeError:
                try:
                    self._kazoo.create(path, producer_id_block_json(broker_id, 0, block_size - 1))
                    return 0
                except NodeExistsError:
                    continue
            start = parse_producer_id_block_end(data) + 1
            try:
                self._kazoo.set(path, producer_id_block_json(broker_id, start, start + block_size - 1),
                                version=stat.version)
                return start
            except BadVersionError:
                continue

    # ------------------------------------------------------------------ reading

    async def read_snapshot(self) -> ClusterSnapshot:
        return await _off_loop(self._read_snapshot)

    def _read_snapshot(self) -> ClusterSnapshot:
        """One pass over the cluster's nodes, with watches re-armed on every one of them; the
        per-node reads are pipelined (kazoo's async calls) so a read costs a few round trips."""
        zk, w, p = self._kazoo, self._notify, self._p
        snap = ClusterSnapshot()
        ids = zk.get_children(p("/brokers/ids"), watch=w)
        topics = zk.get_children(p("/brokers/topics"), watch=w)
        broker_reads = {int(i): zk.get_async(p(f"/brokers/ids/{i}")) for i in ids if i.isdigit()}
        topic_reads = {t: zk.get_async(p(f"/brokers/topics/{t}"), watch=w) for t in topics}
        config_reads = {t: zk.get_async(p(f"/config/topics/{t}"), watch=w) for t in topics}
        deleting = zk.get_children(p("/admin/delete_topics"), watch=w)
        acks = {t: zk.get_children_async(p(f"/admin/delete_topics/{t}"), watch=w) for t in deleting}
        controller = zk.exists_async(p("/controller"), watch=w)
        controller_data = zk.get_async(p("/controller"))
        epoch = zk.get_async(p("/controller_epoch"))
        for broker_id, r in broker_reads.items():
            info = _result(r, lambda d, s: BrokerInfo.from_json(broker_id, d), f"/brokers/ids/{broker_id}")
            if info is not None:
                snap.brokers[broker_id] = info
        if controller.get() is not None:
            cid = _result(controller_data, lambda d, s: parse_controller(d), "/controller")
            snap.controller_id = cid if cid is not None else -1
        value = _result(epoch, lambda d, s: (int(d or b"0"), s.version), "/controller_epoch")
        if value is not None:
            snap.controller_epoch, snap.controller_epoch_version = value
        state_reads = {}
        for t, r in topic_reads.items():
            assignment = _result(r, lambda d, s: TopicAssignment.from_json(t, d), f"/brokers/topics/{t}")
            if assignment is None:
                continue
            snap.topics[t] = assignment
            snap.configs[t] = _result(config_reads[t], lambda d, s: parse_topic_config(d), "") or {}
            for partition in assignment.replicas:
                state_reads[(t, partition)] = zk.get_async(p(state_path(t, partition)), watch=w)
        missing = []
        for key, r in state_reads.items():
            state = _result(r, lambda d, s: PartitionState.from_json(d, s.version), state_path(*key))
            if state is None:
                missing.append(zk.exists_async(p(state_path(*key)), watch=w))  # a watch on its creation
            else:
                snap.states[key] = state
        for r in missing:
            r.get()
        for t, r in acks.items():
            try:
                snap.deleting[t] = {int(i) for i in r.get() if i.isdigit()}
            except NoNodeError:
                pass
        return snap


async def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """A kazoo call in a worker thread; abandoned (left to finish in its thread) if the caller is
    cancelled, so that a ZooKeeper that is down never holds up a shutdown or a timeout."""
    return await trio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)


def _result(r: Any, parse: Callable[[bytes, Any], Any], path: str) -> Any:
    """The parsed value of an async get, or None when the node is absent (or unparseable: logged)."""
    try:
        data, stat = r.get()
    except NoNodeError:
        return None
    value = parse(data, stat)
    if value is None and path:
        log.error("ZooKeeper node %s does not hold what Kafka writes there: %r (ignored)", path, data[:200])
    return value
