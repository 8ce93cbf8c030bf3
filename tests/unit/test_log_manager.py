"""LogManager: topics on disk, reopening, deletion, stale and orphan directories."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import trio

from pykbroker.log import (
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    LogConfig,
    TopicExistsError,
    UnknownTopicOrPartitionError,
)
from pykbroker.log.manager import LogManager, kafka_uuid_str, new_topic_id, parse_kafka_uuid, remove_dirs
from pykbroker.protocol.records import Record, build_batch


def batch(n: int = 1) -> bytes:
    return build_batch([Record(i, 0, None, b"v") for i in range(n)], base_timestamp=1)


def open_mgr(tmp_path: Path, default: LogConfig | None = None) -> LogManager:
    return LogManager.open(tmp_path / "data", default, fsync=False)


def test_create_append_reopen(tmp_path: Path) -> None:
    m = open_mgr(tmp_path)
    info = m.create_topic("orders", 3, {"retention.ms": "1000"})
    assert info.partitions == 3 and info.config.retention_ms == 1000
    m.get_log("orders", 2).append(batch(4))
    m.close()
    d = tmp_path / "data"
    assert sorted(p.name for p in d.iterdir()) == ["__topics", "orders-0", "orders-1", "orders-2"]
    meta = json.loads((d / "__topics" / "orders.json").read_text())
    assert meta["partitions"] == 3 and meta["configs"] == {"retention.ms": "1000"}
    pm = (d / "orders-0" / "partition.metadata").read_text()
    assert pm == f"version: 0\ntopic_id: {kafka_uuid_str(info.topic_id)}\n"

    m = open_mgr(tmp_path)
    again = m.topic("orders")
    assert again.topic_id == info.topic_id and again.config.retention_ms == 1000
    assert m.get_log("orders", 2).log_end_offset == 4
    assert m.topic_by_id(info.topic_id) is again
    assert sorted((t, p) for t, p, _ in m.logs()) == [("orders", 0), ("orders", 1), ("orders", 2)]
    m.close()


def test_errors(tmp_path: Path) -> None:
    m = open_mgr(tmp_path)
    m.create_topic("a.b", 1)
    with pytest.raises(TopicExistsError):
        m.create_topic("a.b", 1)
    with pytest.raises(InvalidTopicError, match="collides"):
        m.create_topic("a_b", 1)
    for bad in ("", ".", "..", "x" * 250, "sp ace", "sl/ash", "../etc"):
        with pytest.raises(InvalidTopicError):
            m.create_topic(bad, 1)
    with pytest.raises(InvalidPartitionsError):
        m.create_topic("zero", 0)
    with pytest.raises(InvalidConfigError, match="segment.bytes"):
        m.create_topic("badcfg", 1, {"segment.bytes": "nope"})
    assert "badcfg" not in m.topics and not (tmp_path / "data" / "badcfg-0").exists()
    with pytest.raises(UnknownTopicOrPartitionError):
        m.get_log("a.b", 1)
    with pytest.raises(UnknownTopicOrPartitionError):
        m.topic("missing")
    info = m.create_topic("dry", 2, validate_only=True)
    assert info.partitions == 2 and "dry" not in m.topics


def test_delete_topic_removes_data_and_name_can_be_reused(tmp_path: Path) -> None:
    m = open_mgr(tmp_path)
    old = m.create_topic("t", 2)
    m.get_log("t", 0).append(batch(5))
    doomed = m.delete_topic("t")
    d = tmp_path / "data"
    # renamed as Kafka does (<topic>-<partition>.<id>-delete), removed later by the caller
    assert sorted(p.name.split(".")[0] for p in doomed) == ["t-0", "t-1"]
    assert all(p.name.endswith("-delete") and p.parent == d for p in doomed)
    assert not (d / "__topics" / "t.json").exists()
    remove_dirs(doomed)
    assert sorted(p.name for p in d.iterdir()) == ["__topics"]
    new = m.create_topic("t", 1)
    assert new.topic_id != old.topic_id
    assert m.get_log("t", 0).log_end_offset == 0
    m.close()


def test_start_removes_only_delete_dirs_and_keeps_unclaimed_ones(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    m = open_mgr(tmp_path)
    m.create_topic("keep", 1)
    m.create_topic("gone", 2)
    m.get_log("keep", 0).append(batch(2))
    m.get_log("gone", 1).append(batch(3))
    m.close()
    d = tmp_path / "data"
    # a topic file removed by hand (or lost): its directories are kept and reported
    (d / "__topics" / "gone.json").unlink()
    (d / "meta.properties").write_text("node.id=1\n")
    (d / "other-0").mkdir()
    (d / "keep-0.0123456789abcdef0123456789abcdef-delete").mkdir()
    (d / "x-delete").mkdir()
    (d / "__topics" / "half.json.tmp").write_text("{")
    (d / "keep-0" / "recovery-point.tmp").write_text("1")
    m = open_mgr(tmp_path)
    assert "gone-0, gone-1, other-0" in caplog.text and "keeping partition directories" in caplog.text
    pending = m.take_pending_deletions()
    assert sorted(p.name for p in pending) == ["keep-0.0123456789abcdef0123456789abcdef-delete", "x-delete"]
    assert m.take_pending_deletions() == []
    remove_dirs(pending)
    names = sorted(p.name for p in d.iterdir())
    assert names == ["__topics", "gone-0", "gone-1", "keep-0", "meta.properties", "other-0"]
    assert not (d / "__topics" / "half.json.tmp").exists() and not (d / "keep-0" / "recovery-point.tmp").exists()
    assert m.get_log("keep", 0).log_end_offset == 2
    assert "gone" not in m.topics
    # a new topic of that name moves the unclaimed directories aside (kept), never deletes them
    m.create_topic("gone", 2)
    strays = sorted(p for p in d.iterdir() if p.name.endswith("-stray"))
    assert [p.name.split(".")[0] for p in strays] == ["gone-0", "gone-1"]
    assert sum(f.stat().st_size for f in strays[1].glob("*.log")) > 0
    assert m.get_log("gone", 1).log_end_offset == 0
    m.close()


def test_create_partitions_and_configs(tmp_path: Path) -> None:
    m = open_mgr(tmp_path, LogConfig.from_kafka_configs({"retention.ms": "5000"}))
    m.create_topic("t", 1, {"segment.bytes": "2097152"})
    with pytest.raises(InvalidPartitionsError):
        m.create_partitions("t", 1)
    m.create_partitions("t", 3)
    assert m.get_log("t", 2).log_end_offset == 0
    info = m.set_topic_configs("t", {"retention.ms": "10"})
    assert info.config.retention_ms == 10 and info.config.segment_bytes == LogConfig().segment_bytes
    assert m.get_log("t", 1).config.retention_ms == 10
    with pytest.raises(InvalidConfigError):
        m.set_topic_configs("t", {"retention.ms": "x"})
    m.close()
    m = open_mgr(tmp_path, LogConfig.from_kafka_configs({"retention.ms": "5000"}))
    assert m.topic("t").partitions == 3 and m.get_log("t", 0).config.retention_ms == 10
    m.set_topic_configs("t", {})
    assert m.get_log("t", 0).config.retention_ms == 5000  # back to the broker default
    m.set_default_config(LogConfig.from_kafka_configs({"retention.ms": "7"}))
    assert m.get_log("t", 0).config.retention_ms == 7
    m.close()


def test_retention_over_all_logs_through_the_partition_layer(tmp_path: Path) -> None:
    from pykbroker.cluster.partition_manager import PartitionManager

    m = open_mgr(tmp_path)
    m.create_topic("t", 2, {"internal.segment.bytes": "200", "retention.bytes": "0"})
    partitions = PartitionManager(m, node_id=1)

    async def fill_and_retain() -> int:
        for p in range(2):
            for _ in range(5):
                await partitions.get("t", p).append_records(batch(1))
        return await partitions.run_retention()

    assert trio.run(fill_and_retain) > 0
    assert all(len(plog.segments) == 1 for _, _, plog in m.logs())
    m.close()


def test_kafka_uuid_format() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    s = kafka_uuid_str(u)
    assert len(s) == 22 and "=" not in s and parse_kafka_uuid(s) == u
    for _ in range(50):
        tid = new_topic_id()
        assert not kafka_uuid_str(tid).startswith("-") and tid.int > 1
