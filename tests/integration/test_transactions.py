"""Transactions with real clients over real sockets: commit, abort, read_committed, fencing,
offsets in transactions, timeouts, interleaving and restarts (issue 11)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.primitives import Msg
from pykbroker.testing import RunningBroker, running_broker
from pykbroker.wire_client import WireClient

FAST_TIMEOUTS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 200}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    with running_broker(FAST_TIMEOUTS, data_dir=tmp_path / "data") as running:
        yield running


def create(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(10)


def producer(bootstrap: str, txn_id: str, **extra: object) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 0, **extra})
    p.init_transactions(15)
    return p


def transaction(p: Producer, topic: str, values: list[bytes], commit: bool, partition: int = 0) -> None:
    p.begin_transaction()
    for v in values:
        p.produce(topic, v, partition=partition)
    p.flush(10)  # written before the end: an abort must hide records the partition holds
    if commit:
        p.commit_transaction(10)
    else:
        p.abort_transaction(10)


def consume(bootstrap: str, topic: str, isolation: str, expected: int, partitions: int = 1,
            timeout_s: float = 10) -> list[bytes]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{isolation}-{time.monotonic_ns()}",
                  "isolation.level": isolation, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and len(got) < expected:
        m = c.poll(0.2)
        if m is not None and not m.error():
            got.append(m.value())
    # a little longer: nothing beyond `expected` may arrive
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        m = c.poll(0.1)
        if m is not None and not m.error():
            got.append(m.value())
    c.close()
    return got


def describe_transaction(bootstrap: str, txn_id: str) -> Msg:
    """DescribeTransactions, retried while the coordinator loads (COORDINATOR_LOAD_IN_PROGRESS)."""
    client = WireClient(bootstrap)
    try:
        deadline = time.monotonic() + 10
        while True:
            state = client.request(65, 0, {"transactional_ids": [txn_id]}).transaction_states[0]
            if state.error_code != ErrorCode.COORDINATOR_LOAD_IN_PROGRESS or time.monotonic() > deadline:
                return state
            time.sleep(0.05)
    finally:
        client.close()


def test_commit_and_abort_read_committed_and_uncommitted(broker: RunningBroker, topic_name: str) -> None:
    bs = broker.bootstrap_servers
    create(bs, topic_name)
    p = producer(bs, "txn-basic")
    transaction(p, topic_name, [b"c0", b"c1", b"c2"], commit=True)
    transaction(p, topic_name, [b"a0", b"a1", b"a2"], commit=False)
    transaction(p, topic_name, [b"d0", b"d1"], commit=True)
    assert consume(bs, topic_name, "read_committed", 5) == [b"c0", b"c1", b"c2", b"d0", b"d1"]
    assert consume(bs, topic_name, "read_uncommitted", 8) == [b"c0", b"c1", b"c2", b"a0", b"a1", b"a2", b"d0", b"d1"]


def test_open_transaction_holds_the_last_stable_offset(broker: RunningBroker, topic_name: str) -> None:
    """read_committed stops at the first record of an open transaction; ListOffsets latest with
    read_committed is the LSO, read_uncommitted the high watermark."""
    bs = broker.bootstrap_servers
    create(bs, topic_name)
    plain = Producer({"bootstrap.servers": bs})
    plain.produce(topic_name, b"before", partition=0)
    plain.flush(10)
    p = producer(bs, "txn-open")
    p.begin_transaction()
    p.produce(topic_name, b"open", partition=0)
    p.flush(10)
    plain.produce(topic_name, b"after", partition=0)
    plain.flush(10)
    client = WireClient(bs)
    try:
        def latest(isolation: int) -> int:
            r = client.request(2, 5, {"replica_id": -1, "isolation_level": isolation, "topics": [
                {"name": topic_name, "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                                     "timestamp": -1}]}]})
            return r.topics[0].partitions[0].offset

        assert (latest(1), latest(0)) == (1, 3)
        assert consume(bs, topic_name, "read_committed", 2, timeout_s=2) == [b"before"]
        p.commit_transaction(10)
        assert latest(1) == latest(0) == 4  # the COMMIT marker took offset 3
    finally:
        client.close()
    assert consume(bs, topic_name, "read_committed", 3) == [b"before", b"open", b"after"]


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(broker: RunningBroker,
                                                                           topic_name: str) -> None:
    bs = broker.bootstrap_servers
    create(bs, topic_name)
    first = producer(bs, "txn-fence")
    first.begin_transaction()
    first.produce(topic_name, b"zombie", partition=0)
    first.flush(10)
    second = producer(bs, "txn-fence")  # aborts the zombie's transaction and bumps the epoch
    transaction(second, topic_name, [b"fresh"], commit=True)
    with pytest.raises(KafkaException) as info:
        first.produce(topic_name, b"late", partition=0)
        first.commit_transaction(10)
    assert info.value.args[0].fatal() or "fenced" in str(info.value).lower(), info.value
    assert consume(bs, topic_name, "read_committed", 1) == [b"fresh"]


def test_offsets_sent_in_a_transaction_commit_with_it(broker: RunningBroker, topic_name: str) -> None:
    """Consume-transform-produce: send_offsets_to_transaction's offsets are the group's committed
    offsets exactly when the transaction commits."""
    bs = broker.bootstrap_servers
    source, sink = topic_name, topic_name + "-out"
    create(bs, source)
    create(bs, sink)
    plain = Producer({"bootstrap.servers": bs})
    for i in range(6):
        plain.produce(source, b"in%d" % i, partition=0)
    plain.flush(10)
    consumer = Consumer({"bootstrap.servers": bs, "group.id": "ctp", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    consumer.subscribe([source])
    p = producer(bs, "txn-ctp")

    def step(n: int, commit: bool) -> None:
        taken = []
        deadline = time.monotonic() + 15
        while len(taken) < n and time.monotonic() < deadline:
            m = consumer.poll(0.2)
            if m is not None and not m.error():
                taken.append(m)
        assert len(taken) == n
        p.begin_transaction()
        for m in taken:
            p.produce(sink, m.value().replace(b"in", b"out"), partition=0)
        p.send_offsets_to_transaction([TopicPartition(source, 0, taken[-1].offset() + 1)],
                                      consumer.consumer_group_metadata(), 10)
        p.flush(10)
        if commit:
            p.commit_transaction(10)
        else:
            p.abort_transaction(10)

    def committed() -> int:
        return consumer.committed([TopicPartition(source, 0)], 10)[0].offset

    step(3, commit=True)
    assert committed() == 3
    step(3, commit=False)
    assert committed() == 3  # the aborted transaction's offsets never became the group's
    consumer.close()
    assert consume(bs, sink, "read_committed", 3) == [b"out0", b"out1", b"out2"]


def test_an_abandoned_transaction_is_aborted_after_its_timeout(broker: RunningBroker, topic_name: str) -> None:
    bs = broker.bootstrap_servers
    create(bs, topic_name)
    abandoned = producer(bs, "txn-abandoned", **{"transaction.timeout.ms": 1000})
    abandoned.begin_transaction()
    abandoned.produce(topic_name, b"never", partition=0)
    abandoned.flush(10)
    other = producer(bs, "txn-other")
    transaction(other, topic_name, [b"kept"], commit=True)
    # The open transaction holds read_committed readers at its first record until the broker aborts it.
    assert consume(bs, topic_name, "read_committed", 1, timeout_s=8) == [b"kept"]
    state = describe_transaction(bs, "txn-abandoned")
    assert state.transaction_state == "CompleteAbort" and state.error_code == 0


def test_interleaved_transactions_on_one_partition(broker: RunningBroker, topic_name: str) -> None:
    """Aborted ranges are reported per producer, so records of committed transactions between
    them are kept and those of aborted ones dropped, whatever the interleaving."""
    bs = broker.bootstrap_servers
    create(bs, topic_name)
    producers = [producer(bs, f"txn-mix-{i}") for i in range(3)]
    expected: list[bytes] = []
    for round_ in range(4):
        for p in producers:
            p.begin_transaction()
        for i, p in enumerate(producers):
            p.produce(topic_name, b"r%d-p%d-a" % (round_, i), partition=0)
        for p in producers:
            p.flush(10)
        for i, p in enumerate(reversed(producers)):
            p.produce(topic_name, b"r%d-p%d-b" % (round_, 2 - i), partition=0)
        for p in producers:
            p.flush(10)
        for i, p in enumerate(producers):
            if (round_ + i) % 2 == 0:
                p.commit_transaction(10)
                expected += [b"r%d-p%d-a" % (round_, i), b"r%d-p%d-b" % (round_, i)]
            else:
                p.abort_transaction(10)
    got = consume(bs, topic_name, "read_committed", len(expected))
    assert sorted(got) == sorted(expected) and len(got) == len(expected)
    assert len(consume(bs, topic_name, "read_uncommitted", 24)) == 24


def test_transactions_survive_a_restart(tmp_path: Path, topic_name: str) -> None:
    """Committed data and the coordinator's state are durable; a transaction left open by the
    restart is aborted when its producer comes back (InitProducerId fences and aborts it)."""
    data = tmp_path / "data"
    with running_broker(FAST_TIMEOUTS, data_dir=data) as first:
        bs = first.bootstrap_servers
        create(bs, topic_name)
        p = producer(bs, "txn-restart")
        transaction(p, topic_name, [b"committed"], commit=True)
        p.begin_transaction()
        p.produce(topic_name, b"in-flight", partition=0)
        p.flush(10)
    with running_broker(FAST_TIMEOUTS, data_dir=data) as second:
        bs = second.bootstrap_servers
        state = describe_transaction(bs, "txn-restart")
        assert state.transaction_state == "Ongoing" and [t.topic for t in state.topics] == [topic_name]
        again = producer(bs, "txn-restart")
        transaction(again, topic_name, [b"after"], commit=True)
        assert consume(bs, topic_name, "read_committed", 2) == [b"committed", b"after"]


def test_kafka_python_transactional_producer(broker: RunningBroker, topic_name: str) -> None:
    from kafka import KafkaProducer

    bs = broker.bootstrap_servers
    create(bs, topic_name)
    p = KafkaProducer(bootstrap_servers=bs, transactional_id="txn-kafka-python")
    p.init_transactions()
    p.begin_transaction()
    p.send(topic_name, b"kp-committed", partition=0)
    p.commit_transaction()
    p.begin_transaction()
    p.send(topic_name, b"kp-aborted", partition=0)
    p.flush()
    p.abort_transaction()
    p.close()
    assert consume(bs, topic_name, "read_committed", 1) == [b"kp-committed"]
    assert consume(bs, topic_name, "read_uncommitted", 2) == [b"kp-committed", b"kp-aborted"]


def test_transaction_errors_are_kafkas(broker: RunningBroker, topic_name: str) -> None:
    bs = broker.bootstrap_servers
    create(bs, topic_name)
    client = WireClient(bs)
    try:
        def init(txn_id: str, timeout_ms: int) -> object:
            return client.request(22, 4, {"transactional_id": txn_id, "transaction_timeout_ms": timeout_ms,
                                          "producer_id": -1, "producer_epoch": -1})

        assert init("too-long", 900_001).error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT
        assert init("", 1000).error_code == ErrorCode.INVALID_REQUEST
        first = init("raw", 60_000)
        assert (first.error_code, first.producer_epoch) == (0, 0)
        bumped = init("raw", 60_000)
        assert (bumped.producer_id, bumped.producer_epoch) == (first.producer_id, 1)

        def add(epoch: int, pid: int | None = None) -> int:
            r = client.request(24, 3, {"v3_and_below_transactional_id": "raw",
                                       "v3_and_below_producer_id": pid if pid is not None else first.producer_id,
                                       "v3_and_below_producer_epoch": epoch,
                                       "v3_and_below_topics": [{"name": topic_name, "partitions": [0]}]})
            return r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code

        assert add(0) == ErrorCode.PRODUCER_FENCED
        assert add(1, pid=first.producer_id + 1000) == ErrorCode.INVALID_PRODUCER_ID_MAPPING
        end = client.request(26, 3, {"transactional_id": "raw", "producer_id": first.producer_id,
                                     "producer_epoch": 1, "committed": True})
        assert end.error_code == ErrorCode.INVALID_TXN_STATE  # nothing open to commit
        assert add(1) == 0
        listed = client.request(66, 1, {"state_filters": ["Ongoing", "Bogus"], "producer_id_filters": [],
                                        "duration_filter": -1})
        assert [t.transactional_id for t in listed.transaction_states] == ["raw"]
        assert list(listed.unknown_state_filters) == ["Bogus"]
        producers = client.request(61, 0, {"topics": [{"name": topic_name, "partition_indexes": [0]}]})
        assert list(producers.topics[0].partitions[0].active_producers) == []  # nothing written yet
    finally:
        client.close()


def test_aiokafka_transactional_producer(broker: RunningBroker, topic_name: str) -> None:
    import asyncio

    from aiokafka import AIOKafkaProducer

    bs = broker.bootstrap_servers
    create(bs, topic_name)

    async def run() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bs, transactional_id="txn-aiokafka")
        await p.start()
        try:
            async with p.transaction():
                await p.send_and_wait(topic_name, b"aio-committed", partition=0)
            await p.begin_transaction()
            await p.send_and_wait(topic_name, b"aio-aborted", partition=0)
            await p.abort_transaction()
        finally:
            await p.stop()

    asyncio.run(run())
    assert consume(bs, topic_name, "read_committed", 1) == [b"aio-committed"]
    assert consume(bs, topic_name, "read_uncommitted", 2) == [b"aio-committed", b"aio-aborted"]


def test_cli_lists_and_describes_transactions(broker: RunningBroker, topic_name: str) -> None:
    import subprocess
    import sys

    bs = broker.bootstrap_servers
    create(bs, topic_name)
    p = producer(bs, "txn-cli")
    p.begin_transaction()
    p.produce(topic_name, b"x", partition=0)
    p.flush(10)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pykbroker", *args, "--bootstrap", bs],
                              capture_output=True, text=True, timeout=60)

    listed = cli("transactions", "list", "--state", "Ongoing")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[0].split() == ["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"]
    assert any(line.split()[0] == "txn-cli" and line.split()[-1] == "Ongoing" for line in listed.stdout.splitlines()[1:])
    described = cli("transactions", "describe", "txn-cli")
    assert described.returncode == 0 and f"{topic_name}-0" in described.stdout, described
    missing = cli("transactions", "describe", "nobody")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad = cli("transactions", "list", "--state", "Sleeping")
    assert bad.returncode == 1 and "Sleeping" in bad.stderr
    p.abort_transaction(10)


def test_deleting_transaction_state_forgets_transactions_and_serves_new_ones(broker: RunningBroker,
                                                                           topic_name: str) -> None:
    bs = broker.bootstrap_servers
    create(bs, topic_name)
    transaction(producer(bs, "txn-before-delete"), topic_name, [b"one"], commit=True)
    admin = AdminClient({"bootstrap.servers": bs})
    admin.delete_topics(["__transaction_state"])["__transaction_state"].result(10)
    assert describe_transaction(bs, "txn-before-delete").error_code == ErrorCode.NOT_COORDINATOR
    transaction(producer(bs, "txn-after-delete"), topic_name, [b"two"], commit=True)
    assert describe_transaction(bs, "txn-before-delete").error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
    assert consume(bs, topic_name, "read_committed", 2) == [b"one", b"two"]
