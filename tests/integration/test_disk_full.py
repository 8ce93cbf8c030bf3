"""A full or failing disk is a Kafka error for the partitions it hits, never a disconnect or lost data.

Two ways to fill the disk: a real 4 MiB tmpfs (needs root to mount; CI runs as root), and an injected
ENOSPC at the file layer for one partition only, to show that the others keep working.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import types
from pathlib import Path
from typing import Iterator

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaStorageError

from pykbroker.log import segment as segment_module
from pykbroker.protocol.errors import ErrorCode
from pykbroker.protocol.records import Record, build_batch
from pykbroker.testing import running_broker
from pykbroker.wire_client import WireClient

PRODUCE, FETCH, CREATE_TOPICS = 0, 1, 19
VALUE = os.urandom(50_000)


def batch(n: int = 1) -> bytes:
    return build_batch([Record(i, 0, None, VALUE, []) for i in range(n)], base_timestamp=1_700_000_000_000)


def produce(client: WireClient, topic: str, partition: int = 0) -> tuple[int, int]:
    r = client.request(PRODUCE, 9, {"acks": -1, "timeout_ms": 5000, "transactional_id": None, "topic_data": [
        {"name": topic, "partition_data": [{"index": partition, "records": batch()}]}]})
    p = r.responses[0].partition_responses[0]
    return p.error_code, p.base_offset


def fetch_count(client: WireClient, topic: str, partition: int = 0) -> tuple[int, int]:
    """(error code, number of records) of everything in the partition, fetched from offset 0."""
    from pykbroker.protocol.records import iter_batches
    r = client.request(FETCH, 11, {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 30,
                                   "isolation_level": 0, "session_id": 0, "session_epoch": -1, "rack_id": "",
                                   "forgotten_topics_data": [], "topics": [
                                       {"topic": topic, "partitions": [{"partition": partition, "fetch_offset": 0,
                                                                        "current_leader_epoch": -1,
                                                                        "log_start_offset": -1,
                                                                        "partition_max_bytes": 1 << 30}]}]})
    p = r.responses[0].partitions[0]
    return p.error_code, sum(h.records_count for _, h in iter_batches(p.records or b""))


def create(client: WireClient, topic: str, partitions: int = 1) -> None:
    r = client.request(CREATE_TOPICS, 7, {"topics": [{"name": topic, "num_partitions": partitions,
                                                       "replication_factor": 1, "assignments": [],
                                                       "configs": [{"name": "segment.bytes", "value": "1048576"}]}],
                                          "timeout_ms": 5000, "validate_only": False})
    assert r.topics[0].error_code == 0, r


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root (the injected-ENOSPC test covers the same code without it)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()} "
                    "(the injected-ENOSPC test covers the same code)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_tmpfs_gives_storage_error_then_recovers(small_tmpfs: Path) -> None:
    data = small_tmpfs / "data"
    with running_broker(data_dir=data) as broker:
        client = WireClient(broker.bootstrap_servers)
        create(client, "fill")
        acked = 0
        codes = set()
        for _ in range(200):  # 50 KB each: 4 MiB is full long before 200
            code, _ = produce(client, "fill")
            codes.add(code)
            if code:
                break
            acked += 1
        assert codes == {0, ErrorCode.KAFKA_STORAGE_ERROR}, codes
        # The connection stays open and reads keep working: every acknowledged record is there.
        assert fetch_count(client, "fill") == (0, acked)
        # A real client sees the Kafka error too (kafka-python, no retries).
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", retries=0,
                                 max_request_size=1 << 20)
        with pytest.raises(KafkaStorageError):
            producer.send("fill", VALUE, partition=0).get(timeout=10)
        producer.close(timeout=5)
        # Space returns (the operator grows the file system): appends succeed again, no gap in the log.
        grown = subprocess.run(["mount", "-o", "remount,size=16m", str(small_tmpfs)], capture_output=True)
        assert grown.returncode == 0, grown.stderr
        code, offset = produce(client, "fill")
        assert (code, offset) == (0, acked)
        assert fetch_count(client, "fill") == (0, acked + 1)
        client.close()
    assert not list(data.rglob("*.tmp")), "a temporary file was left behind"


def test_injected_enospc_fails_only_that_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_broker() as broker:
        client = WireClient(broker.bootstrap_servers)
        create(client, "disk", partitions=2)
        assert produce(client, "disk", 0)[0] == 0
        assert produce(client, "disk", 1)[0] == 0
        failing = {"on": True}
        bad_dir = str(broker.data_dir / "disk-0")

        real_pwrite = os.pwrite

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            if failing["on"] and os.readlink(f"/proc/self/fd/{fd}").startswith(bad_dir):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_pwrite(fd, data, offset)

        fake_os = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
        fake_os.pwrite = pwrite
        monkeypatch.setattr(segment_module, "os", fake_os)
        assert produce(client, "disk", 0)[0] == ErrorCode.KAFKA_STORAGE_ERROR
        assert produce(client, "disk", 1) == (0, 1)  # the other partition is unaffected
        assert fetch_count(client, "disk", 0) == (0, 1)
        failing["on"] = False
        assert produce(client, "disk", 0) == (0, 1)  # the failed append left nothing behind
        assert fetch_count(client, "disk", 0) == (0, 2)
        client.close()
