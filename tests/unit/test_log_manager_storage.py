"""LogManager: start-up refuses unreadable metadata (never deletes), and a failing disk
(ENOSPC/EIO, injected at the file layer) leaves disk and memory as they were."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pytest

from pykbroker.log import KafkaStorageError
from pykbroker.log import checkpoint
from pykbroker.log.errors import UnreadableMetadataError
from pykbroker.log.manager import LogManager, kafka_uuid_str
from pykbroker.protocol.records import Record, build_batch


def batch(n: int = 1) -> bytes:
    return build_batch([Record(i, 0, None, b"v") for i in range(n)], base_timestamp=1)


def open_mgr(tmp_path: Path) -> LogManager:
    return LogManager.open(tmp_path / "data", fsync=True)


def tree(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def with_orders(tmp_path: Path) -> Path:
    m = open_mgr(tmp_path)
    m.create_topic("orders", 2)
    m.get_log("orders", 0).append(batch(3))
    m.close()
    return tmp_path / "data"


def test_corrupt_topic_file_stops_start_up_and_deletes_nothing(tmp_path: Path) -> None:
    d = with_orders(tmp_path)
    topic_file = d / "__topics" / "orders.json"
    raw = bytearray(topic_file.read_bytes())
    raw[0] ^= 0xFF
    topic_file.write_bytes(bytes(raw))
    before = tree(d)
    with pytest.raises(UnreadableMetadataError, match=str(topic_file)) as info:
        open_mgr(tmp_path)
    assert isinstance(info.value, ValueError) and "Refusing to start" in str(info.value)
    assert tree(d) == before and any((d / "orders-0").glob("*.log"))
    topic_file.write_bytes(bytes(raw[:0]) + bytes([raw[0] ^ 0xFF]) + bytes(raw[1:]))  # repaired
    m = open_mgr(tmp_path)
    assert m.get_log("orders", 0).log_end_offset == 3
    m.close()


@pytest.mark.parametrize("content", ["{}", '{"name": "other", "topic_id": "x", "partitions": 1}',
                                     '{"name": "orders", "topic_id": "%s", "partitions": 0}' % uuid.uuid4(), "[1]"])
def test_wrong_topic_file_contents_stop_start_up(tmp_path: Path, content: str) -> None:
    d = with_orders(tmp_path)
    (d / "__topics" / "orders.json").write_text(content)
    with pytest.raises(UnreadableMetadataError, match="orders.json"):
        open_mgr(tmp_path)
    assert (d / "orders-0").is_dir() and (d / "orders-1").is_dir()


@pytest.mark.parametrize("content", ["garbage", "version: 0\ntopic_id: !!!\n",
                                     f"version: 0\ntopic_id: {kafka_uuid_str(uuid.uuid4())}\n"])
def test_bad_or_foreign_partition_metadata_stops_start_up(tmp_path: Path, content: str) -> None:
    d = with_orders(tmp_path)
    meta = d / "orders-0" / "partition.metadata"
    meta.write_text(content)
    with pytest.raises(UnreadableMetadataError, match=str(meta)):
        open_mgr(tmp_path)
    assert any((d / "orders-0").glob("*.log"))


def _fail(monkeypatch: pytest.MonkeyPatch, name: str, code: int, when: str = "") -> None:
    """Make os.<name> in the checkpoint module fail with errno ``code`` (for paths containing ``when``)."""
    real = getattr(os, name)

    def failing(*args: object, **kwargs: object) -> object:
        target = args[0]
        if isinstance(target, int) or when in str(target):
            raise OSError(code, os.strerror(code), str(target))
        return real(*args, **kwargs)
    monkeypatch.setattr(checkpoint.os, name, failing)


@pytest.mark.parametrize("call", ["write", "fsync", "replace"])
def test_create_topic_on_failing_disk_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    d = with_orders(tmp_path)
    m = open_mgr(tmp_path)
    before = tree(d)
    with monkeypatch.context() as mp:
        _fail(mp, call, errno.ENOSPC if call == "write" else errno.EIO, "" if call != "replace" else ".json")
        with pytest.raises(KafkaStorageError, match="new") as info:
            m.create_topic("new", 3)
    assert info.value.error_code == 56
    assert "new" not in m.topics and tree(d) == before
    assert not list(d.rglob("*.tmp"))
    m.create_topic("new", 3)  # the name is free again and the disk works
    assert m.get_log("new", 2).log_end_offset == 0
    m.close()


def test_create_partitions_and_configs_on_failing_disk_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = with_orders(tmp_path)
    m = open_mgr(tmp_path)
    before = tree(d)
    with monkeypatch.context() as mp:
        _fail(mp, "write", errno.ENOSPC)
        with pytest.raises(KafkaStorageError, match="orders"):
            m.create_partitions("orders", 4)
        with pytest.raises(KafkaStorageError, match="orders.json"):
            m.set_topic_configs("orders", {"retention.ms": "10"})
    assert tree(d) == before and not list(d.rglob("*.tmp"))
    assert m.topic("orders").partitions == 2 and m.topic("orders").configs == {}
    assert m.get_log("orders", 0).config.retention_ms != 10
    m.close()
    m = open_mgr(tmp_path)
    assert m.topic("orders").partitions == 2
    m.close()


def test_delete_topic_on_failing_disk_undoes_the_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = with_orders(tmp_path)
    m = open_mgr(tmp_path)
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.suffix == ".json":
            raise OSError(errno.EIO, "Input/output error", str(self))
        real_unlink(self, missing_ok=missing_ok)
    with monkeypatch.context() as mp:
        mp.setattr(Path, "unlink", unlink)
        with pytest.raises(KafkaStorageError, match="orders.json"):
            m.delete_topic("orders")
    assert sorted(p.name for p in d.iterdir()) == ["__topics", "orders-0", "orders-1"]
    assert m.get_log("orders", 0).log_end_offset == 3
    m.get_log("orders", 0).append(batch(1))
    m.close()
    m = open_mgr(tmp_path)
    assert m.get_log("orders", 0).log_end_offset == 4
    m.close()


def test_write_atomic_removes_its_tmp_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x"
    target.write_bytes(b"old")
    _fail(monkeypatch, "fsync", errno.EIO)
    with pytest.raises(OSError):
        checkpoint.write_atomic(target, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"] and target.read_bytes() == b"old"
