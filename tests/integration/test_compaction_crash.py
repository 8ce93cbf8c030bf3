"""SIGKILL during log cleaning: the child broker is killed while it writes cleaned segments (the
cleaner is throttled so that a round takes seconds); every restart finds a consistent log, with
each key's latest value at its offset and only records that were produced."""

from __future__ import annotations

import random
import time
from pathlib import Path

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from child_broker import ChildBroker
from cleaner_helpers import read_all

TOPIC = "crashy"
SETTINGS = ["log.cleaner.backoff.ms=100", "log.cleaner.io.max.bytes.per.second=40000",
            "log.cleaner.io.buffer.size=4096"]
KILLS = 4


def _produce(bootstrap: str) -> dict[int, tuple[bytes, bytes]]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(TOPIC, 1, 1, topic_configs={
        "cleanup.policy": "compact", "internal.segment.bytes": "16384", "min.cleanable.dirty.ratio": "0.01",
        "file.delete.delay.ms": "0"})])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    futures = []
    for update in range(30):
        for k in range(200):
            key, value = b"key-%03d" % k, b"value-%03d-%02d" % (k, update)
            futures.append((producer.send(TOPIC, key=key, value=value), key, value))
    for i in range(400):  # roll the active segment past the changelog
        futures.append((producer.send(TOPIC, key=b"filler", value=b"f%d" % i), b"filler", b"f%d" % i))
    producer.flush()
    produced = {f.get(10).offset: (key, value) for f, key, value in futures}
    producer.close()
    return produced


def _check(bootstrap: str, produced: dict[int, tuple[bytes, bytes]]) -> None:
    rows = read_all(bootstrap, TOPIC)
    offsets = [r.offset for r in rows]
    assert offsets == sorted(set(offsets)), "offsets repeat or go back"
    for r in rows:
        assert produced[r.offset] == (r.key, r.value), f"offset {r.offset} holds a record never produced there"
    latest: dict[bytes, tuple[int, bytes]] = {}
    for offset, (key, value) in sorted(produced.items()):
        latest[key] = (offset, value)
    got = {r.key: (r.offset, r.value) for r in rows}
    assert got == latest


def _wait_for_cleaning(directory: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(p.name.endswith(".cleaned") for p in directory.iterdir()):
        assert time.monotonic() < deadline, "the cleaner never started writing a cleaned segment"
        time.sleep(0.02)


def test_sigkill_while_cleaning_leaves_a_consistent_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    broker = ChildBroker(data, ["log.cleaner.enable=false"])
    rng = random.Random()
    try:
        broker.start()
        produced = _produce(broker.bootstrap)  # nothing cleaned yet: the first round has the whole log
        broker.kill()
        broker.settings = SETTINGS
        broker.start()
        partition_dir = data / f"{TOPIC}-0"
        left_behind = []
        for _ in range(KILLS):
            _wait_for_cleaning(partition_dir)
            time.sleep(rng.uniform(0, 0.5))
            broker.kill()  # mid-round: a .cleaned (maybe a .swap) segment is on disk
            left_behind.append(sorted(p.suffix for p in partition_dir.iterdir() if p.suffix in (".cleaned", ".swap")))
            broker.start()
            _check(broker.bootstrap, produced)
            assert not [p for p in partition_dir.iterdir() if p.suffix in (".cleaned", ".swap")]
        assert any(left_behind), "no kill landed while a cleaned segment was being written"
        # Unthrottled, the cleaner finishes the job after all those interruptions.
        broker.kill()
        broker.settings = ["log.cleaner.backoff.ms=100"]
        broker.start()
        deadline = time.monotonic() + 30
        while sum(p.stat().st_size for p in partition_dir.glob("*.log")) > 40_000:
            assert time.monotonic() < deadline, "the cleaner did not finish after the restarts"
            time.sleep(0.2)
        _check(broker.bootstrap, produced)
    finally:
        broker.close()
