"""Shared helpers for the log cleaner tests: a compacted partition, appends, one cleaning round, and
reading a topic back with kafka-python."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio

from pykbroker.cluster.log_cleaner import CleanerConfig, CleanResult, LogCleaner
from pykbroker.cluster.partition import Partition
from pykbroker.log.config import LogConfig
from pykbroker.log.partition_log import PartitionLog
from pykbroker.protocol.records import Record, build_batch, decode_records


def compacted_config(**kafka: Any) -> LogConfig:
    """A compacted topic with small segments that the cleaner always finds dirty enough."""
    configs = {"cleanup.policy": "compact", "internal.segment.bytes": "2048", "min.cleanable.dirty.ratio": "0.01"}
    configs.update({k.replace("_", "."): str(v) for k, v in kafka.items()})
    return LogConfig.from_kafka_configs(configs)


def open_partition(directory: Path, config: LogConfig | None = None) -> Partition:
    plog = PartitionLog.open(directory, config or compacted_config(), fsync=False)
    return Partition(directory.name.rsplit("-", 1)[0], 0, plog, 1)


def keyed(key: bytes, value: bytes | None, **kw: Any) -> bytes:
    return build_batch([Record(key=key, value=value)], **kw)


def append(p: Partition, records: bytes) -> int:
    """Append a client batch; returns its base offset."""
    return trio.run(p.append_records, records).base_offset


def clean(p: Partition, **config: Any) -> CleanResult | None:
    """One cleaning round over ``p`` (None: it was not dirty enough)."""
    return trio.run(LogCleaner(lambda: [p], CleanerConfig(**config)).clean_filthiest)


def records(plog: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every data record in the log, in order."""
    out = []
    for h, data in plog.iter_batches():
        if h.is_control:
            continue
        out.extend((h.base_offset + r.offset_delta, r.key, r.value) for r in decode_records(data))
    return out


def latest(rows: list[tuple[int, bytes | None, bytes | None]]) -> dict[bytes | None, tuple[int, bytes | None]]:
    return {k: (o, v) for o, k, v in rows}


def read_all(bootstrap: str, topic: str, **extra: object) -> list:
    """Every record from the beginning up to the end offset seen at the start."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000, **extra)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    out = []
    deadline = time.monotonic() + 30
    while c.position(tp) < end and time.monotonic() < deadline:
        for batch in c.poll(500).values():
            out.extend(batch)
    c.close()
    return out
