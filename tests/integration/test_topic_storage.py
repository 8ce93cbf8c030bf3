"""Topic metadata on disk, seen from real clients: start-up refuses unreadable metadata (and
deletes nothing), deletions go through *-delete directories, a full or failing disk is answered
with KAFKA_STORAGE_ERROR and leaves nothing half-made; internal topics and InitProducerId as Kafka."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from pykbroker.log import checkpoint
from pykbroker.protocol.errors import ErrorCode
from pykbroker.testing import RunningBroker, running_broker
from pykbroker.wire_client import WireClient

METADATA, OFFSET_COMMIT, OFFSET_FETCH, CREATE_TOPICS, DELETE_TOPICS, INIT_PRODUCER_ID = 3, 8, 9, 19, 20, 22
CREATE_PARTITIONS, INCREMENTAL_ALTER_CONFIGS = 37, 44
STORAGE = ErrorCode.KAFKA_STORAGE_ERROR


def create(client: WireClient, name: str, partitions: int = 1) -> int:
    r = client.request(CREATE_TOPICS, 7, {"topics": [{"name": name, "num_partitions": partitions,
                                                       "replication_factor": 1}], "timeout_ms": 5000})
    return r.topics[0].error_code


def add_partitions(client: WireClient, name: str, count: int) -> int:
    r = client.request(CREATE_PARTITIONS, 3, {"topics": [{"name": name, "count": count, "assignments": None}],
                                               "timeout_ms": 5000, "validate_only": False})
    return r.results[0].error_code


def alter_config(client: WireClient, name: str, key: str, value: str) -> int:
    r = client.request(INCREMENTAL_ALTER_CONFIGS, 1, {"resources": [
        {"resource_type": 2, "resource_name": name, "configs": [{"name": key, "config_operation": 0, "value": value}]}],
        "validate_only": False})
    return r.responses[0].error_code


def delete(client: WireClient, name: str) -> int:
    r = client.request(DELETE_TOPICS, 6, {"topics": [{"name": name, "topic_id": uuid.UUID(int=0)}],
                                          "timeout_ms": 5000})
    return r.responses[0].error_code


def partitions_of(client: WireClient, name: str) -> int:
    r = client.request(METADATA, 12, {"topics": [{"name": name, "topic_id": uuid.UUID(int=0)}],
                                      "allow_auto_topic_creation": False, "include_topic_authorized_operations": False})
    return len(r.topics[0].partitions)


def topic_configs(kafka_broker_dir: Path, name: str) -> str:
    return (kafka_broker_dir / "__topics" / f"{name}.json").read_text()


def tree(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def produce(bootstrap: str, topic: str, n: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(n):
        producer.send(topic, b"v%d" % i)
    producer.flush(10)
    producer.close()


def count(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    tp = TopicPartition(topic, 0)
    end = consumer.end_offsets([tp])[tp]
    consumer.close()
    return end


@pytest.fixture
def client(kafka_broker: RunningBroker) -> Iterator[WireClient]:
    c = WireClient(kafka_broker.bootstrap_servers)
    yield c
    c.close()


# ---------------------------------------------------------------------------- start-up

def test_corrupt_topic_file_refuses_start_naming_it_and_keeps_the_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_broker(data_dir=data) as b:
        KafkaAdminClient(bootstrap_servers=b.bootstrap_servers).create_topics([NewTopic("orders", 1, 1)])
        produce(b.bootstrap_servers, "orders", 5)
    topic_file = data / "__topics" / "orders.json"
    raw = bytearray(topic_file.read_bytes())
    raw[0] ^= 0x55  # one byte
    topic_file.write_bytes(bytes(raw))
    before = tree(data)
    r = subprocess.run([sys.executable, "-m", "pykbroker", "serve", "--listen", "127.0.0.1:0", "--data-dir",
                        str(data)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "cannot start" in r.stderr and str(topic_file) in r.stderr and "Traceback" not in r.stderr
    assert tree(data) == before and (data / "orders-0").is_dir()
    raw[0] ^= 0x55
    topic_file.write_bytes(bytes(raw))
    with running_broker(data_dir=data) as b:
        assert count(b.bootstrap_servers, "orders") == 5


def test_deletion_renames_then_removes_in_background_and_start_removes_only_delete_dirs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_broker(data_dir=data) as b:
        c = WireClient(b.bootstrap_servers)
        assert create(c, "doomed", 2) == 0 and create(c, "kept") == 0
        produce(b.bootstrap_servers, "doomed", 3)
        assert delete(c, "doomed") == 0
        deadline = time.monotonic() + 10
        while any(p.name.startswith("doomed-") for p in data.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(p.name.startswith("doomed-") for p in data.iterdir())
        c.close()
    # what start-up finds: a leftover of an interrupted deletion, an unclaimed directory, a torn write
    (data / "kept-0.00112233445566778899aabbccddeeff-delete").mkdir()
    (data / "kept-0.00112233445566778899aabbccddeeff-delete" / "00000000000000000000.log").write_bytes(b"x")
    (data / "lost-0").mkdir()
    (data / "__topics" / "x.json.tmp").write_text("{")
    with running_broker(data_dir=data) as b:
        deadline = time.monotonic() + 10
        while (data / "kept-0.00112233445566778899aabbccddeeff-delete").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        names = sorted(p.name for p in data.iterdir() if p.is_dir())
        assert "kept-0" in names and "lost-0" in names and not any(n.endswith("-delete") for n in names)
        assert not (data / "__topics" / "x.json.tmp").exists()
        assert count(b.bootstrap_servers, "kept") == 0


# ---------------------------------------------------------------------------- failing disk

def _fail_fsync(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Every fsync fails (the broker is the only one in this process that calls it)."""
    def failing(fd: int) -> None:
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(checkpoint.os, "fsync", failing)


def test_injected_eio_is_answered_with_storage_error_and_changes_nothing(
        kafka_broker: RunningBroker, client: WireClient, monkeypatch: pytest.MonkeyPatch) -> None:
    data = kafka_broker.data_dir
    assert create(client, "t", 1) == 0
    before = tree(data)
    with monkeypatch.context() as mp:
        _fail_fsync(mp, errno.EIO)
        assert create(client, "new", 2) == STORAGE
        assert add_partitions(client, "t", 3) == STORAGE
        assert alter_config(client, "t", "retention.ms", "1234") == STORAGE
        r = client.request(INIT_PRODUCER_ID, 4, {"transactional_id": None, "transaction_timeout_ms": 1000,
                                                  "producer_id": -1, "producer_epoch": -1})
        assert r.error_code == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    assert tree(data) == before and not list(data.rglob("*.tmp"))
    assert partitions_of(client, "t") == 1 and "1234" not in topic_configs(data, "t")
    assert partitions_of(client, "new") == 0
    # deletion: the topic file cannot be removed -> the renames are undone, the topic stays
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.suffix == ".json":
            raise OSError(errno.EIO, "Input/output error", str(self))
        real_unlink(self, missing_ok=missing_ok)
    with monkeypatch.context() as mp:
        mp.setattr(Path, "unlink", unlink)
        assert delete(client, "t") == STORAGE
    assert tree(data) == before and partitions_of(client, "t") == 1
    # and with a working disk again, everything works
    assert create(client, "new", 2) == 0 and add_partitions(client, "t", 3) == 0
    assert alter_config(client, "t", "retention.ms", "1234") == 0 and "1234" in topic_configs(data, "t")
    assert delete(client, "t") == 0 and partitions_of(client, "t") == 0


@contextlib.contextmanager
def small_tmpfs(where: Path) -> Iterator[Path]:
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_full_disk_is_answered_with_storage_error(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "small") as data, \
            running_broker({"offsets.topic.num.partitions": "1"}, data_dir=data) as b:
        c = WireClient(b.bootstrap_servers)
        assert create(c, "t") == 0
        filler = data / "filler"
        with open(filler, "wb") as f:
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        before = tree(data)
        assert create(c, "new", 3) == STORAGE
        assert add_partitions(c, "t", 4) == STORAGE
        assert alter_config(c, "t", "retention.ms", "1234") == STORAGE
        assert tree(data) == before and not list(data.rglob("*.tmp"))
        assert partitions_of(c, "t") == 1 and partitions_of(c, "new") == 0
        assert delete(c, "t") == 0  # renames and unlinks need no space
        filler.unlink()
        assert create(c, "new", 3) == 0 and partitions_of(c, "new") == 3
        c.close()


# ---------------------------------------------------------------------------- internal topics

def test_only_kafkas_internal_topics_are_internal(client: WireClient) -> None:
    assert create(client, "__foo") == 0
    r = client.request(METADATA, 12, {"topics": None, "allow_auto_topic_creation": False,
                                      "include_topic_authorized_operations": False})
    internal = {t.name: t.is_internal for t in r.topics}
    assert internal["__foo"] is False and internal["__consumer_offsets"] is True


def test_deleting_consumer_offsets_is_allowed_as_in_kafka_and_commits_still_work(
        kafka_broker: RunningBroker, client: WireClient) -> None:
    def commit(offset: int) -> int:
        r = client.request(OFFSET_COMMIT, 8, {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "",
                                              "topics": [{"name": "t", "partitions": [
                                                  {"partition_index": 0, "committed_offset": offset}]}]})
        return r.topics[0].partitions[0].error_code

    def fetched() -> list:
        r = client.request(OFFSET_FETCH, 8, {"groups": [{"group_id": "g", "topics": None}]})
        return [(t.name, p.committed_offset) for t in r.groups[0].topics for p in t.partitions]

    assert create(client, "t") == 0 and commit(5) == 0 and fetched() == [("t", 5)]
    partitions = partitions_of(client, "__consumer_offsets")
    # Kafka's brokers accept DeleteTopics for internal topics (only kafka-topics.sh refuses);
    # the group coordinator's offsets go with it and the topic comes back on the next use.
    assert delete(client, "__consumer_offsets") == 0
    assert fetched() == []
    assert partitions == partitions_of(client, "__consumer_offsets") > 0
    assert commit(7) == 0 and fetched() == [("t", 7)]


# ---------------------------------------------------------------------------- InitProducerId

def test_init_producer_id_without_transactional_id_is_always_a_new_id_with_epoch_0(client: WireClient) -> None:
    def init(pid: int, epoch: int) -> tuple[int, int, int]:
        r = client.request(INIT_PRODUCER_ID, 4, {"transactional_id": None, "transaction_timeout_ms": 1000,
                                                  "producer_id": pid, "producer_epoch": epoch})
        return r.error_code, r.producer_id, r.producer_epoch
    code, first, epoch = init(-1, -1)
    assert code == 0 and epoch == 0
    code, second, epoch = init(first, 0)  # naming an issued id does not bump its epoch
    assert code == 0 and second != first and epoch == 0
    code, third, epoch = init(987654, 7)  # nor does naming one never issued
    assert code == 0 and third not in (first, second, 987654) and epoch == 0
    r = client.request(INIT_PRODUCER_ID, 4, {"transactional_id": "", "transaction_timeout_ms": 1000,
                                              "producer_id": -1, "producer_epoch": -1})
    assert r.error_code == ErrorCode.INVALID_REQUEST
