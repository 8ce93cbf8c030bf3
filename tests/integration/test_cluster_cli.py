"""`pykbroker cluster`: a local ZooKeeper and N brokers for development, stopped on SIGTERM; started
again on the same directory, the whole cluster keeps its topics and data."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from pykbroker.tools.pipes import readable_within

pytestmark = pytest.mark.cluster


def start(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, "-m", "pykbroker", "cluster", "--brokers", "2", "--base-port", "0",
                             "--data-dir", str(data), "--set", "zookeeper.session.timeout.ms=2000"],
                            stdout=subprocess.PIPE, stderr=(data.parent / "cluster-stderr.log").open("ab"))
    assert proc.stdout is not None
    ready = readable_within(proc.stdout, 90)
    line = proc.stdout.readline().decode() if ready else ""
    assert "pykbroker cluster ready: bootstrap " in line, line
    return proc, line.split("bootstrap ", 1)[1].split(" ", 1)[0]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0


def test_pykbroker_cluster_runs_brokers_and_a_restart_keeps_the_data(tmp_path: Path) -> None:
    data = tmp_path / "cluster"
    proc, bootstrap = start(data)
    try:
        assert len(bootstrap.split(",")) == 2
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("dev", 1, 2)], timeout_ms=20000)
        admin.close()
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i in range(10):
            producer.send("dev", b"r%d" % i)
        producer.flush(30)
        producer.close()
    finally:
        stop(proc)
    proc, bootstrap = start(data)
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(",")[1], auto_offset_reset="earliest",
                                 consumer_timeout_ms=20000)
        consumer.assign([TopicPartition("dev", 0)])
        values = []
        for m in consumer:
            values.append(m.value)
            if len(values) == 10:
                break
        consumer.close()
        assert values == [b"r%d" % i for i in range(10)]
    finally:
        stop(proc)


def test_a_broker_stops_promptly_on_sigterm_when_zookeeper_is_gone(tmp_path: Path) -> None:
    from child_broker import ChildBroker

    from pykbroker.tools.zookeeper import zookeeper_server
    with zookeeper_server(tmp_path / "zk") as zk:
        broker = ChildBroker(tmp_path / "data", ["broker.id=1", f"zookeeper.connect={zk.connect}/gone",
                                                 "zookeeper.session.timeout.ms=2000"], log_level="INFO")
        broker.start()
    try:
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGTERM)
        assert broker.proc.wait(20) == 0  # no wait on a ZooKeeper that is not there
    finally:
        broker.close()
