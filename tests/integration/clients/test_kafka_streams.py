"""Kafka Streams 4.x with processing.guarantee=exactly_once_v2 against pykbroker: a word count whose
instance is SIGKILLed mid-stream and restarted still ends with exactly the right counts."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pykbroker.testing import running_broker
from pykbroker.tools.pipes import readable_within

ROOT = Path(__file__).resolve().parents[3]
TOOLS = Path(os.environ.get("PYKBROKER_TOOLS_DIR", ROOT / ".tools"))
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


@pytest.fixture(scope="session")
def streams_classpath() -> str:
    setup = subprocess.run(["bash", str(ROOT / "tests" / "tools" / "setup_kafka_streams.sh")], capture_output=True,
                           text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert setup.returncode == 0, f"setup_kafka_streams.sh failed:\n{setup.stdout}\n{setup.stderr}"
    return f"{TOOLS / 'streams-classes'}:{TOOLS / 'streams-lib'}/*"


class StreamsApp:
    """One WordCountApp JVM; `start` returns once the instance reports RUNNING."""

    def __init__(self, classpath: str, args: list[str], log: Path) -> None:
        self.classpath, self.args, self.log = classpath, args, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90) -> None:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(["java", "-Xmx256m", "-XX:+UseSerialGC", "-cp", self.classpath,
                                          "WordCountApp", *self.args], stdout=subprocess.PIPE, stderr=err)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = readable_within(self.proc.stdout, 1)
            line = self.proc.stdout.readline() if ready else b""
            if line.strip() == b"STATE RUNNING":
                return
            if self.proc.poll() is not None:
                break
        self.stop(signal.SIGKILL)
        raise AssertionError(f"Kafka Streams did not reach RUNNING; see {self.log}:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def produce_lines(bootstrap: str, topic: str, rng: random.Random, n: int, counts: collections.Counter) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(1, 6))
        counts.update(words)
        p.produce(topic, " ".join(words).encode(), key=b"%d" % i)
        if i % 50 == 0:
            p.poll(0)
    p.flush(30)


def latest_counts(bootstrap: str, topic: str, partitions: int) -> dict[str, int]:
    """The last count per word in the output topic, read_committed (so only committed transactions)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: dict[str, int] = {}
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 1.5:
        msgs = c.consume(num_messages=1000, timeout=0.3)
        if msgs:
            idle_since = time.monotonic()
        for m in msgs:
            if m.error() is None:
                out[m.key().decode()] = int.from_bytes(m.value(), "big", signed=True)
    c.close()
    return out


def test_word_count_exactly_once_across_a_sigkill(tmp_path: Path, streams_classpath: str, topic_name: str) -> None:
    rng = random.Random(20261202)
    settings = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 500, "num.partitions": 2}
    with running_broker(settings, data_dir=tmp_path / "data") as broker:
        bs = broker.bootstrap_servers
        source, sink = topic_name + "-lines", topic_name + "-counts"
        admin = AdminClient({"bootstrap.servers": bs})
        for f in admin.create_topics([NewTopic(source, 2, 1), NewTopic(sink, 2, 1)]).values():
            f.result(10)
        expected: collections.Counter = collections.Counter()
        app = StreamsApp(streams_classpath, [bs, source, sink, "wordcount-" + topic_name, str(tmp_path / "state")],
                         tmp_path / "streams.log")
        produce_lines(bs, source, rng, 300, expected)
        app.start()
        try:
            deadline = time.monotonic() + 60
            while not latest_counts(bs, sink, 2) and time.monotonic() < deadline:
                time.sleep(0.5)
            produce_lines(bs, source, rng, 300, expected)
            time.sleep(rng.uniform(0.2, 1.0))  # mid-stream: some of these are processed, some not
            app.stop(signal.SIGKILL)
            produce_lines(bs, source, rng, 300, expected)
            app.start()  # same state dir: same process id, so its transactional id fences the dead one
            deadline = time.monotonic() + 90
            counts: dict[str, int] = {}
            while time.monotonic() < deadline:
                counts = latest_counts(bs, sink, 2)
                if counts == dict(expected):
                    break
                time.sleep(1)
            assert counts == dict(expected), f"counts {counts} != expected {dict(expected)}; see {app.log}"
            # Kafka Streams 4.4 runs exactly_once_v2 on transactions v2 (KIP-890) here: partitions and the
            # group's offsets join by Produce v12 / TxnOffsetCommit v5+, each commit bumps the epoch
            assert broker.broker is not None
            assert broker.broker.txns.v2_epoch_bumps > 0 and broker.broker.txns.v2_partition_adds > 0
        finally:
            app.stop()
