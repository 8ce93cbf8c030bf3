"""Log compaction with real clients over real sockets: a keyed changelog on cleanup.policy=compact,
tombstones, idempotent producers after their batches were cleaned, transactions, and the
committed-offsets topic (issue: log cleaner)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from cleaner_helpers import read_all
from pykbroker.testing import RunningBroker, running_broker

T = TypeVar("T")
FAST_CLEANER = {"log.cleaner.backoff.ms": 100}
COMPACTED = {"cleanup.policy": "compact", "internal.segment.bytes": "16384", "min.cleanable.dirty.ratio": "0.01",
             "delete.retention.ms": "2000", "file.delete.delay.ms": "0"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    with running_broker(FAST_CLEANER, data_dir=tmp_path / "data") as running:
        yield running


def create(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
    admin.close()


def eventually(check: Callable[[], T], what: str, timeout_s: float = 120) -> T:
    """``check()``'s result once it is truthy (the cleaner runs every log.cleaner.backoff.ms)."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"the cleaner did not {what} in time"
        time.sleep(0.2)
    return result


def roll(producer: KafkaProducer, topic: str, n: int = 400) -> None:
    """Filler on its own few keys, enough to roll the active segment past everything before."""
    for i in range(n):
        producer.send(topic, key=b"filler-%d" % (i % 3), value=b"f" * 40)
    producer.flush()


def test_changelog_compacts_to_latest_value_per_key(broker: RunningBroker) -> None:
    topic = "changelog"
    create(broker.bootstrap_servers, topic, COMPACTED)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=5)  # idempotent by default
    futures = {}
    for update in range(20):
        for k in range(1000):
            key = b"key-%04d" % k
            dead = update == 19 and k % 10 == 0
            value = None if dead else b"value-%d-%d" % (k, update)
            futures[key] = (producer.send(topic, key=key, value=value), value)
    producer.flush()
    expected = {key: (f.get(10).offset, value) for key, (f, value) in futures.items()}
    roll(producer, topic)

    def changelog(count: int) -> list | None:
        rows = [r for r in read_all(broker.bootstrap_servers, topic) if not r.key.startswith(b"filler")]
        return rows if len(rows) == count else None

    got = eventually(lambda: changelog(1000), "compact the changelog")
    assert len(got) == 1000  # exactly one record per key: the latest (the tombstones too, for now)
    assert {r.key: (r.offset, r.value) for r in got} == expected
    assert [r.offset for r in got] == sorted(r.offset for r in got)

    # The tombstones' delete.retention.ms passes; more writes make the log dirty again.
    time.sleep(2.5)
    roll(producer, topic)
    got = eventually(lambda: changelog(900), "remove the tombstones")
    live = {k: v for k, v in expected.items() if v[1] is not None}
    assert {r.key: (r.offset, r.value) for r in got} == live  # tombstones (and their keys) gone

    # The same idempotent producer carries on after its batches were cleaned away.
    more = [producer.send(topic, key=b"key-0001", value=b"after-%d" % i) for i in range(50)]
    producer.flush()
    assert [f.get(10).offset for f in more] == sorted(f.get(10).offset for f in more)
    producer.close()


def test_idempotent_producer_continues_after_its_batches_were_cleaned(broker: RunningBroker) -> None:
    topic = "idem"
    create(broker.bootstrap_servers, topic, COMPACTED)
    idem = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=True, linger_ms=0)
    for i in range(30):
        idem.send(topic, key=b"k%d" % (i % 3), value=b"idem-%d" % i).get(10)
    other = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False)
    for i in range(600):  # supersedes every record of the idempotent producer
        other.send(topic, key=b"k%d" % (i % 3), value=b"other-%d" % i)
    roll(other, topic)  # the superseding records leave the active segment
    other.close()
    eventually(lambda: all(not r.value.startswith(b"idem") for r in read_all(broker.bootstrap_servers, topic)),
               "remove the idempotent producer's records")
    # Its last batch stays, emptied, with its producer id, epoch and sequence (Kafka keeps it so).
    pid = idem._transaction_manager.producer_id_and_epoch.producer_id
    plog = broker.broker.partition(topic, 0).log
    kept = [h for h, _ in plog.iter_batches() if h.producer_id == pid]
    assert [(h.records_count, h.base_sequence) for h in kept] == [(0, 29)]
    # The producer carries on: sequence 30 onwards is accepted, none is refused as out of order.
    more = [idem.send(topic, key=b"k%d" % (i % 3), value=b"idem-again-%d" % i) for i in range(40)]
    idem.flush()
    offsets = [f.get(10).offset for f in more]
    assert offsets == sorted(offsets) and len(set(offsets)) == 40
    idem.close()


def test_transactions_compacted_as_kafka_does(broker: RunningBroker) -> None:
    topic = "txns"
    create(broker.bootstrap_servers, topic, COMPACTED)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, transactional_id="cleaner-txn")
    p.init_transactions()
    p.begin_transaction()
    for i in range(200):
        p.send(topic, key=b"committed-%d" % (i % 20), value=b"c-%d" % i)
    p.commit_transaction()
    p.begin_transaction()
    for i in range(200):
        p.send(topic, key=b"aborted-%d" % (i % 20), value=b"a-%d" % i)
    p.flush()
    p.abort_transaction()
    p.begin_transaction()
    for i in range(400):
        p.send(topic, key=b"filler-%d" % (i % 3), value=b"f" * 40)
    p.commit_transaction()
    p.close()
    eventually(lambda: not [r for r in read_all(broker.bootstrap_servers, topic) if r.key.startswith(b"aborted")],
               "remove the aborted transaction")
    for isolation in ("read_uncommitted", "read_committed"):
        got = read_all(broker.bootstrap_servers, topic, isolation_level=isolation)
        keys = {r.key: r.value for r in got}
        assert not [k for k in keys if k.startswith(b"aborted")]  # removed, not just hidden
        assert {k: v for k, v in keys.items() if k.startswith(b"committed")} == {
            b"committed-%d" % k: b"c-%d" % (180 + k) for k in range(20)}
    plog = broker.broker.partition(topic, 0).log
    assert not [h for h, _ in plog.iter_batches() if h.is_transactional and not h.is_control
                and h.records_count and b"aborted" in _first_key(plog, h)]


def _first_key(plog, h) -> bytes:
    from pykbroker.protocol.records import decode_records

    for hh, data in plog.iter_batches(h.base_offset):
        return decode_records(data)[0].key or b""
    return b""


def test_keyless_records_rejected_on_compacted_topic(broker: RunningBroker) -> None:
    from kafka.errors import InvalidRecordError

    create(broker.bootstrap_servers, "needs-keys", COMPACTED)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, retries=0)
    with pytest.raises(InvalidRecordError):
        p.send("needs-keys", value=b"no key").get(10)
    assert p.send("needs-keys", key=b"k", value=b"keyed").get(10).offset == 0
    p.close()


def test_consumer_offsets_shrink_and_reload(tmp_path: Path) -> None:
    settings = {**FAST_CLEANER, "offsets.topic.segment.bytes": 32768}
    data = tmp_path / "data"
    with running_broker(settings, data_dir=data) as running:
        create(running.bootstrap_servers, "src", {})
        c = KafkaConsumer(bootstrap_servers=running.bootstrap_servers, group_id="g", enable_auto_commit=False)
        tp = TopicPartition("src", 0)
        c.assign([tp])
        from kafka.structs import OffsetAndMetadata

        for i in range(3000):
            c.commit({tp: OffsetAndMetadata(i, "", -1)})
        offsets_log = running.broker.partition("__consumer_offsets", 0).log
        assert offsets_log.log_end_offset >= 3000

        def live_bytes() -> int | None:
            size = offsets_log.size_in_bytes
            return size if size < 3 * 32768 else None  # the active segment and a few cleaned ones

        eventually(live_bytes, "compact __consumer_offsets")
        assert len(list(offsets_log.iter_batches())) < 3000 / 5
        c.close()
    with running_broker(settings, data_dir=data) as running:
        c = KafkaConsumer(bootstrap_servers=running.bootstrap_servers, group_id="g", enable_auto_commit=False)
        assert c.committed(TopicPartition("src", 0)) == 2999
        c.close()
