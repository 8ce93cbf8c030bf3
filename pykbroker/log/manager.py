"""The set of partition logs under one ``log.dirs`` directory, and topic metadata.

Layout::

    <log_dir>/__topics/<topic>.json     topic id, partition count, config overrides
    <log_dir>/<topic>-<partition>/       one PartitionLog per partition, with a
                                         Kafka-style ``partition.metadata`` (topic id)

The topic file is the commit point: it is written (atomically) before the
partition directories are created, and removed before they are deleted.
Hence on startup a partition directory that no topic file claims is the
remains of an interrupted deletion and is removed, and a directory whose
``partition.metadata`` names another topic id is a stale leftover of an
earlier topic with the same name.

Not thread-safe: the broker drives it from its single trio thread.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pykbroker.log.checkpoint import write_atomic
from pykbroker.log.config import LogConfig
from pykbroker.log.errors import (
    InvalidPartitionsError,
    InvalidTopicError,
    TopicExistsError,
    UnknownTopicOrPartitionError,
)
from pykbroker.log.partition_log import PartitionLog

log = logging.getLogger(__name__)

TOPICS_DIR: Final = "__topics"
PARTITION_METADATA_FILE: Final = "partition.metadata"
MAX_TOPIC_NAME_LENGTH: Final = 249
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")
_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")
_DELETE_SUFFIX: Final = "-delete"


def kafka_uuid_str(u: uuid.UUID) -> str:
    """Kafka's ``Uuid.toString``: URL-safe base64 of the 16 bytes, no padding."""
    return base64.urlsafe_b64encode(u.bytes).rstrip(b"=").decode()


def parse_kafka_uuid(s: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))


def new_topic_id() -> uuid.UUID:
    """A random id Kafka would accept (not the reserved 0/1 ids, no leading '-')."""
    while True:
        u = uuid.uuid4()
        if u.int > 1 and not kafka_uuid_str(u).startswith("-"):
            return u


def validate_topic_name(name: str) -> None:
    """Kafka's ``Topic.validate``."""
    if not name:
        raise InvalidTopicError("Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"Topic name cannot be \"{name}\"")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters, topic name: {name}"
        )
    if not _LEGAL_TOPIC.match(name):
        raise InvalidTopicError(
            f"Topic name \"{name}\" is illegal, it contains a character other than "
            "ASCII alphanumerics, '.', '_' and '-'"
        )


@dataclass(slots=True)
class TopicInfo:
    name: str
    topic_id: uuid.UUID
    partitions: int
    #: The topic's explicit config overrides (Kafka names -> strings).
    configs: dict[str, str] = field(default_factory=dict)
    #: Effective config: broker defaults overlaid with ``configs``.
    config: LogConfig = field(default_factory=LogConfig)

    def to_json(self) -> str:
        return json.dumps(
            {"name": self.name, "topic_id": str(self.topic_id), "partitions": self.partitions, "configs": self.configs},
            indent=1,
            sort_keys=True,
        )


class LogManager:
    """Owns every partition log under ``log_dir`` and the topics they belong to."""

    def __init__(self, log_dir: Path, default_config: LogConfig | None = None, *, fsync: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.default_config = default_config if default_config is not None else LogConfig()
        self.fsync = fsync
        self._topics: dict[str, TopicInfo] = {}
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._load()

    @classmethod
    def open(cls, log_dir: Path, default_config: LogConfig | None = None, *, fsync: bool = True) -> LogManager:
        return cls(Path(log_dir), default_config, fsync=fsync)

    # ----------------------------------------------------------------- loading

    @property
    def _topics_dir(self) -> Path:
        return self.log_dir / TOPICS_DIR

    def _topic_file(self, name: str) -> Path:
        return self._topics_dir / f"{name}.json"

    def _partition_dir(self, name: str, partition: int) -> Path:
        return self.log_dir / f"{name}-{partition}"

    def _load(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._topics_dir.mkdir(exist_ok=True)
        for path in self.log_dir.iterdir():
            if path.is_dir() and path.name.endswith(_DELETE_SUFFIX):
                shutil.rmtree(path, ignore_errors=True)
        for path in sorted(self._topics_dir.glob("*.json")):
            try:
                raw = json.loads(path.read_text())
                configs = {str(k): str(v) for k, v in raw.get("configs", {}).items()}
                info = TopicInfo(
                    name=raw["name"],
                    topic_id=uuid.UUID(raw["topic_id"]),
                    partitions=int(raw["partitions"]),
                    configs=configs,
                    config=LogConfig.from_kafka_configs(configs, self.default_config),
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("ignoring unreadable topic metadata %s: %s", path, exc)
                continue
            self._topics[info.name] = info
        for path in self.log_dir.iterdir():
            m = _PARTITION_DIR.match(path.name)
            if not (m and path.is_dir() and (path / PARTITION_METADATA_FILE).exists()):
                continue
            info = self._topics.get(m.group(1))
            if info is None or int(m.group(2)) >= info.partitions:
                log.warning("removing partition directory %s left by an interrupted topic deletion", path.name)
                self._remove_dir(path)
        for info in self._topics.values():
            for p in range(info.partitions):
                self._open_partition(info, p)

    def _open_partition(self, info: TopicInfo, partition: int) -> PartitionLog:
        d = self._partition_dir(info.name, partition)
        meta = d / PARTITION_METADATA_FILE
        if meta.exists() and _read_partition_topic_id(meta) != info.topic_id:
            log.warning("removing stale directory %s of an older topic with the same name", d.name)
            self._remove_dir(d)
        d.mkdir(parents=True, exist_ok=True)
        if not meta.exists():
            write_atomic(
                meta, f"version: 0\ntopic_id: {kafka_uuid_str(info.topic_id)}\n".encode(), fsync=self.fsync
            )
        plog = PartitionLog.open(d, info.config, fsync=self.fsync)
        self._logs[(info.name, partition)] = plog
        return plog

    def _remove_dir(self, path: Path) -> None:
        doomed = path.with_name(f"{uuid.uuid4().hex}{_DELETE_SUFFIX}")
        path.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    # ------------------------------------------------------------------ topics

    @property
    def topics(self) -> dict[str, TopicInfo]:
        return dict(self._topics)

    def topic(self, name: str) -> TopicInfo:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopicOrPartitionError(f"unknown topic {name!r}") from None

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        for info in self._topics.values():
            if info.topic_id == topic_id:
                return info
        return None

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str | None] | None = None,
        *,
        topic_id: uuid.UUID | None = None,
        validate_only: bool = False,
    ) -> TopicInfo:
        """Create a topic and its partition logs (CreateTopics); validate everything first."""
        validate_topic_name(name)
        if name in self._topics:
            raise TopicExistsError(f"Topic '{name}' already exists.")
        collision = name.replace(".", "_")
        for other in self._topics:
            if other.replace(".", "_") == collision:
                raise InvalidTopicError(
                    f"Topic '{name}' collides with existing topic: {other}"
                )
        if partitions < 1:
            raise InvalidPartitionsError("Number of partitions must be larger than 0.")
        overrides = {k: str(v).strip() for k, v in (configs or {}).items() if v is not None}
        config = LogConfig.from_kafka_configs(overrides, self.default_config)
        info = TopicInfo(name, topic_id or new_topic_id(), partitions, overrides, config)
        if validate_only:
            return info
        write_atomic(self._topic_file(name), info.to_json().encode(), fsync=self.fsync)
        self._topics[name] = info
        for p in range(partitions):
            self._open_partition(info, p)
        return info

    def delete_topic(self, name: str) -> TopicInfo:
        """Delete a topic and all its data (DeleteTopics)."""
        info = self.topic(name)
        self._topic_file(name).unlink(missing_ok=True)
        del self._topics[name]
        for p in range(info.partitions):
            plog = self._logs.pop((name, p), None)
            if plog is not None:
                plog.close_handles()
            d = self._partition_dir(name, p)
            if d.exists():
                self._remove_dir(d)
        return info

    def create_partitions(self, name: str, total: int, *, validate_only: bool = False) -> TopicInfo:
        """Grow a topic to ``total`` partitions (CreatePartitions)."""
        info = self.topic(name)
        if total <= info.partitions:
            raise InvalidPartitionsError(
                f"Topic currently has {info.partitions} partitions, which is higher than or equal to "
                f"the requested {total}."
            )
        if validate_only:
            return info
        old = info.partitions
        info.partitions = total
        write_atomic(self._topic_file(name), info.to_json().encode(), fsync=self.fsync)
        for p in range(old, total):
            self._open_partition(info, p)
        return info

    def set_topic_configs(self, name: str, configs: Mapping[str, str | None], *, validate_only: bool = False) -> TopicInfo:
        """Replace a topic's config overrides (AlterConfigs; incremental callers compute the full set)."""
        info = self.topic(name)
        overrides = {k: str(v).strip() for k, v in configs.items() if v is not None}
        config = LogConfig.from_kafka_configs(overrides, self.default_config)
        if validate_only:
            return TopicInfo(info.name, info.topic_id, info.partitions, overrides, config)
        info.configs, info.config = overrides, config
        write_atomic(self._topic_file(name), info.to_json().encode(), fsync=self.fsync)
        for p in range(info.partitions):
            self._logs[(name, p)].update_config(config)
        return info

    def set_default_config(self, default_config: LogConfig) -> None:
        """Change the broker-level defaults; every topic's effective config is recomputed."""
        self.default_config = default_config
        for info in self._topics.values():
            info.config = LogConfig.from_kafka_configs(info.configs, default_config)
            for p in range(info.partitions):
                self._logs[(info.name, p)].update_config(info.config)

    # -------------------------------------------------------------------- logs

    def get_log(self, topic: str, partition: int) -> PartitionLog:
        try:
            return self._logs[(topic, partition)]
        except KeyError:
            raise UnknownTopicOrPartitionError(
                f"This server does not host this topic-partition: {topic}-{partition}"
            ) from None

    def logs(self) -> Iterator[tuple[str, int, PartitionLog]]:
        for (topic, partition), plog in self._logs.items():
            yield topic, partition, plog

    def run_retention(self, now_ms: int | None = None) -> int:
        """Apply retention to every log; return the number of segments deleted."""
        return sum(plog.delete_old_segments(now_ms) for plog in self._logs.values())

    def flush_due(self, now_ms: int | None = None) -> int:
        """Flush logs whose ``flush.ms`` has elapsed; return how many were flushed."""
        return sum(1 for plog in self._logs.values() if plog.maybe_flush(now_ms))

    def flush_all(self) -> None:
        for plog in self._logs.values():
            plog.flush()

    def close(self) -> None:
        for plog in self._logs.values():
            plog.close()
        self._logs.clear()

    def __enter__(self) -> LogManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_partition_topic_id(path: Path) -> uuid.UUID | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "topic_id":
                return parse_kafka_uuid(value.strip())
    except (OSError, ValueError):
        pass
    return None
