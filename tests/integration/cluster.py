"""A local cluster for the cluster tests: a real ZooKeeper and N `pykbroker serve` child processes on
free 127.0.0.1 ports, each with its own data dir; brokers can be SIGKILLed, SIGSTOPped and restarted."""

from __future__ import annotations

import signal
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from child_broker import ChildBroker
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from pykbroker.protocol.messages import API_KEYS
from pykbroker.tools.zookeeper import RunningZooKeeper, zookeeper_server
from pykbroker.wire_client import WireClient

#: Short timeouts so that failures are detected in seconds (Kafka's defaults are 18 s and 30 s).
SESSION_TIMEOUT_MS = 2000
LAG_MS = 2000


class LocalCluster:
    def __init__(self, zk: RunningZooKeeper, work: Path, size: int, extra: dict[str, str]) -> None:
        self.zk = zk
        self.chroot = f"/pyk-{uuid.uuid4().hex[:8]}"
        self.brokers: dict[int, ChildBroker] = {}
        for broker_id in range(1, size + 1):
            home = work / f"broker-{broker_id}"
            home.mkdir()
            settings = {"broker.id": str(broker_id), "zookeeper.connect": zk.connect + self.chroot,
                        "zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_MS),
                        "replica.lag.time.max.ms": str(LAG_MS), "default.replication.factor": str(size),
                        "log.flush.interval.messages": "9223372036854775807",
                        **{k: v.replace("{id}", str(broker_id)) for k, v in extra.items()}}
            self.brokers[broker_id] = ChildBroker(home / "data", [f"{k}={v}" for k, v in settings.items()],
                                                  log_level="INFO")

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def running(self) -> list[ChildBroker]:
        return [b for b in self.brokers.values() if b.proc is not None and b.proc.poll() is None]

    def start_all(self) -> None:
        for b in self.brokers.values():
            b.start()
        self.wait_for_brokers(list(self.brokers))

    def live_brokers(self, via: int) -> list[int]:
        client = WireClient(self.brokers[via].bootstrap)
        try:
            md = client.request(API_KEYS["METADATA"], 9, {"topics": [], "allow_auto_topic_creation": False})
        finally:
            client.close()
        return sorted(b.node_id for b in md.brokers)

    def wait_for_brokers(self, expected: list[int]) -> None:
        """Until every running broker lists exactly ``expected`` as live (ZooKeeper watches are quick, not instant)."""
        for b_id, b in self.brokers.items():
            if b in self.running():
                wait_for(f"broker {b_id} to see brokers {expected}", lambda: self.live_brokers(b_id) == sorted(expected))

    def kill(self, broker_id: int) -> None:
        self.brokers[broker_id].kill()

    def stop(self, broker_id: int) -> None:
        proc = self.brokers[broker_id].proc
        assert proc is not None
        proc.send_signal(signal.SIGSTOP)

    def resume(self, broker_id: int) -> None:
        proc = self.brokers[broker_id].proc
        assert proc is not None
        proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        for b in self.brokers.values():
            if b.proc is not None and b.proc.poll() is None:
                b.proc.send_signal(signal.SIGCONT)
            b.close()

    # ------------------------------------------------------------------ looking at it

    def metadata(self, via: int, topic: str) -> object:
        client = WireClient(self.brokers[via].bootstrap)
        try:
            return client.request(API_KEYS["METADATA"], 9, {"topics": [{"name": topic}],
                                                            "allow_auto_topic_creation": False})
        finally:
            client.close()

    def partition_state(self, via: int, topic: str, partition: int = 0) -> tuple[int, int, list[int]]:
        """(leader, leader epoch, ISR) as broker ``via`` reports it in Metadata."""
        md = self.metadata(via, topic)
        p = next(p for p in md.topics[0].partitions if p.partition_index == partition)  # type: ignore[attr-defined]
        return p.leader_id, p.leader_epoch, sorted(p.isr_nodes)

    def wait_for_leader(self, topic: str, partition: int = 0, via: int = 1) -> int:
        """The leader broker ``via`` names, once that leader serves the partition itself: each broker
        learns its role from ZooKeeper, so right after CreateTopics the leader may still answer
        NOT_LEADER_OR_FOLLOWER. Checked with a leader-only Fetch (v10), which changes nothing."""
        def ready() -> int | None:
            leader = self.partition_state(via, topic, partition)[0]
            if leader < 0:
                return None
            client = WireClient(self.brokers[leader].bootstrap)
            try:
                r = client.request(API_KEYS["FETCH"], 10, {
                    "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "topics": [{"topic": topic, "partitions": [
                        {"partition": partition, "fetch_offset": 0, "partition_max_bytes": 1}]}]})
            finally:
                client.close()
            return leader if r.responses[0].partitions[0].error_code == 0 else None
        return int(wait_for(f"the leader of {topic}-{partition} to serve it", ready))  # type: ignore[arg-type]

    def transaction_coordinator(self, txn_id: str) -> int:
        """The broker FindCoordinator names for a transactional id (retried while __transaction_state
        is being created and its leader elected)."""
        def ask() -> int | None:
            client = WireClient(self.running()[0].bootstrap)
            try:
                r = client.request(API_KEYS["FIND_COORDINATOR"], 3, {"key": txn_id, "key_type": 1})
            finally:
                client.close()
            return r.node_id if r.error_code == 0 else None
        return int(wait_for(f"the coordinator of {txn_id}", ask))  # type: ignore[arg-type]

    def create_topic(self, topic: str, partitions: int = 1, replication: int = 3, configs: dict[str, str] | None = None,
                     via: int | None = None) -> None:
        target = self.brokers[via].bootstrap if via is not None else self.running()[0].bootstrap
        admin = KafkaAdminClient(bootstrap_servers=target, request_timeout_ms=30000)
        try:
            admin.create_topics([NewTopic(topic, partitions, replication, topic_configs=configs or {})],
                                timeout_ms=20000)
        finally:
            admin.close()


def wait_for(what: str, check: Callable[[], object], timeout_s: float = 30, interval_s: float = 0.1) -> object:
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # a broker not up yet, a leader moving: try again
            last = e
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {last!r}")


@contextmanager
def local_cluster(zk: RunningZooKeeper, tmp_path: Path, size: int = 3, **extra: str) -> Iterator[LocalCluster]:
    """``size`` brokers on ``zk`` under a chroot of their own; settings as keyword arguments
    with underscores for dots (min_insync_replicas="2"); "{id}" in a value is the broker's id."""
    cluster = LocalCluster(zk, tmp_path, size, {k.replace("_", "."): v for k, v in extra.items()})
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.close()


@contextmanager
def zookeeper(tmp_path: Path) -> Iterator[RunningZooKeeper]:
    with zookeeper_server(tmp_path / "zk") as zk:
        yield zk
